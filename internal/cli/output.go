package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"sigs.k8s.io/yaml"
)

// outputFlag is -o/--output, one of formats, the first by default.
func outputFlag(formats ...string) cli.Flag {
	return &cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: formats[0], Usage: orList(formats)}
}

// outputFormat is c's --output, refused unless it is one of formats.
func outputFormat(c *cli.Context, formats ...string) (string, error) {
	out := c.String("output")
	if !slices.Contains(formats, out) {
		return "", fmt.Errorf("--output %q: want %s", out, orList(formats))
	}
	return out, nil
}

// printData writes v as out says, "json" (indented) or "yaml".
func printData(w io.Writer, out string, v any) error {
	if out == "yaml" {
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// orList is "a, b or c".
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}
