package kubelet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/spf13/pflag"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	cliflag "k8s.io/component-base/cli/flag"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/kubernetes/cmd/kubelet/app/options"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	kubeletscheme "k8s.io/kubernetes/pkg/kubelet/apis/config/v1beta1"
	kubeletvalidation "k8s.io/kubernetes/pkg/kubelet/apis/config/validation"
	"k8s.io/kubernetes/pkg/kubelet/eviction"
	"k8s.io/kubernetes/pkg/kubelet/kubeletconfig/configfiles"
	utilfs "k8s.io/kubernetes/pkg/util/filesystem"
)

// dropinExt is the only extension a --config-dir file is read with.
const dropinExt = ".conf"

// load turns the kubelet's flags into what upstream's Run takes, in
// upstream's order (NewKubeletCommand's RunE, cmd/kubelet/app/server.go at
// v1.37.2): the flags; the --config file; the --config-dir drop-ins in
// lexical order; the flags again over both, so a --kubelet-arg wins; then
// validation. It also returns the parsed flag set, which the kubelet
// prints and serves on /flagz. skipped lists drop-ins without the .conf
// extension.
func load(ctx context.Context, args []string) (s *options.KubeletServer, flags *pflag.FlagSet, skipped []string, err error) {
	flags = pflag.NewFlagSet("kubelet", pflag.ContinueOnError)
	flags.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	flags.SetOutput(io.Discard)
	kf := options.NewKubeletFlags()
	kc, err := options.NewKubeletConfiguration()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("kubelet defaults: %w", err)
	}
	kf.AddFlags(flags)
	options.AddKubeletConfigFlags(flags, kc)
	options.AddGlobalFlags(flags)
	if err := flags.Parse(args); err != nil {
		return nil, nil, nil, fmt.Errorf("kubelet arguments: %w; check --kubelet-arg", err)
	}
	if flags.NArg() > 0 {
		return nil, nil, nil, fmt.Errorf("kubelet arguments: %q is not a flag; check --kubelet-arg", flags.Arg(0))
	}
	if err := options.ValidateKubeletFlags(kf); err != nil {
		return nil, nil, nil, fmt.Errorf("kubelet flags: %w", err)
	}
	if kf.KubeletConfigFile != "" {
		if kc, err = loadFile(ctx, kf.KubeletConfigFile); err != nil {
			return nil, nil, nil, err
		}
	}
	if kf.KubeletDropinConfigDirectory != "" {
		if skipped, err = mergeDropins(kc, kf.KubeletDropinConfigDirectory); err != nil {
			return nil, nil, nil, err
		}
	}
	if kf.KubeletConfigFile != "" || kf.KubeletDropinConfigDirectory != "" {
		if err := reparse(kc, args); err != nil {
			return nil, nil, nil, fmt.Errorf("kubelet arguments over the config file: %w", err)
		}
	}
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(kc.FeatureGates); err != nil {
		return nil, nil, nil, fmt.Errorf("kubelet feature gates: %w", err)
	}
	if err := kubeletvalidation.ValidateKubeletConfiguration(kc, utilfeature.DefaultFeatureGate); err != nil {
		return nil, nil, nil, fmt.Errorf("kubelet configuration: %w", err)
	}
	return &options.KubeletServer{KubeletFlags: *kf, KubeletConfiguration: *kc}, flags, skipped, nil
}

// loadFile reads a KubeletConfiguration file with upstream's loader and,
// as upstream does, fills in the hard eviction thresholds a file leaves
// out.
func loadFile(ctx context.Context, name string) (*kubeletconfig.KubeletConfiguration, error) {
	path, err := filepath.Abs(name)
	if err != nil {
		return nil, fmt.Errorf("kubelet config file %s: %w", name, err)
	}
	loader, err := configfiles.NewFsLoader(&utilfs.DefaultFs{}, path)
	if err != nil {
		return nil, fmt.Errorf("kubelet config file %s: %w", path, err)
	}
	kc, err := loader.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("kubelet config file %s: %w", path, err)
	}
	switch {
	case kc.EvictionHard == nil:
		kc.EvictionHard = eviction.DefaultEvictionHard
	case kc.MergeDefaultEvictionSettings:
		for k, v := range eviction.DefaultEvictionHard {
			if _, ok := kc.EvictionHard[k]; !ok {
				kc.EvictionHard[k] = v
			}
		}
	}
	return kc, nil
}

// mergeDropins applies every .conf file under dir, in lexical order, as a
// JSON merge patch over kc's v1beta1 form, then defaults and converts the
// result back into kc. Other files are returned, not read.
func mergeDropins(kc *kubeletconfig.KubeletConfiguration, dir string) (skipped []string, err error) {
	var versioned kubeletv1beta1.KubeletConfiguration
	if err := kubeletscheme.Convert_config_KubeletConfiguration_To_v1beta1_KubeletConfiguration(kc, &versioned, nil); err != nil {
		return nil, fmt.Errorf("kubelet config: %w", err)
	}
	merged, err := json.Marshal(&versioned)
	if err != nil {
		return nil, fmt.Errorf("kubelet config: %w", err)
	}
	walk := func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if filepath.Ext(path) != dropinExt {
			skipped = append(skipped, path)
			return nil
		}
		merged, err = applyDropin(merged, path)
		return err
	}
	if err := filepath.WalkDir(dir, walk); err != nil {
		return nil, fmt.Errorf("kubelet --config-dir %s: %w", dir, err)
	}
	versioned = kubeletv1beta1.KubeletConfiguration{}
	if err := json.Unmarshal(merged, &versioned); err != nil {
		return nil, fmt.Errorf("kubelet --config-dir %s: merged config: %w", dir, err)
	}
	kubeletscheme.SetDefaults_KubeletConfiguration(&versioned)
	if err := kubeletscheme.Convert_v1beta1_KubeletConfiguration_To_config_KubeletConfiguration(&versioned, kc, nil); err != nil {
		return nil, fmt.Errorf("kubelet --config-dir %s: merged config: %w", dir, err)
	}
	return skipped, nil
}

// applyDropin merges one drop-in file, which must be a v1beta1
// KubeletConfiguration, over base.
func applyDropin(base []byte, path string) ([]byte, error) {
	loader, err := configfiles.NewFsLoader(&utilfs.DefaultFs{}, path)
	if err != nil {
		return nil, fmt.Errorf("drop-in %s: %w", path, err)
	}
	patch, gvk, err := loader.LoadIntoJSON()
	if err != nil {
		return nil, fmt.Errorf("drop-in %s: %w", path, err)
	}
	want := kubeletv1beta1.SchemeGroupVersion.WithKind("KubeletConfiguration")
	if gvk == nil || *gvk != want {
		return nil, fmt.Errorf("drop-in %s: not a %s (apiVersion and kind)", path, want)
	}
	out, err := jsonpatch.MergePatch(base, patch)
	if err != nil {
		return nil, fmt.Errorf("drop-in %s: %w", path, err)
	}
	return out, nil
}

// reparse applies the flags over kc again. As upstream does, it parses
// into a throwaway flag set whose non-config flags do nothing, since some
// flags add to a value on every parse, and keeps feature gates the file
// set and the flags did not.
func reparse(kc *kubeletconfig.KubeletConfiguration, args []string) error {
	globals := pflag.NewFlagSet("", pflag.ContinueOnError)
	options.AddGlobalFlags(globals)
	fs := pflag.NewFlagSet("", pflag.ContinueOnError)
	fs.SetNormalizeFunc(cliflag.WordSepNormalizeFunc)
	fs.SetOutput(io.Discard)
	globals.VisitAll(func(f *pflag.Flag) { fs.VarP(cliflag.NoOp{}, f.Name, f.Shorthand, f.Usage) })
	options.NewKubeletFlags().AddFlags(fs)
	original := kc.FeatureGates
	options.AddKubeletConfigFlags(fs, kc)
	if err := fs.Parse(args); err != nil {
		return err
	}
	for k, v := range original {
		if _, ok := kc.FeatureGates[k]; !ok {
			kc.FeatureGates[k] = v
		}
	}
	return nil
}
