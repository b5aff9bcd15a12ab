package log

import (
	"log/slog"

	"github.com/go-logr/logr"
	logsapi "k8s.io/component-base/logs/api/v1"
)

// ComponentFormat is the component-base logging format that writes into
// monokube's log. Upstream commands that apply their own logging
// configuration (the kubelet) are given it, so they keep logging into the
// one stream instead of switching klog back to its own text output.
const ComponentFormat = "monokube"

// RegisterComponentFormat registers ComponentFormat, backed by logger.
// Like Klog, it changes process-wide state: call it once, from main-level
// code, before any component starts.
func RegisterComponentFormat(logger *slog.Logger) error {
	return logsapi.RegisterLogFormat(ComponentFormat, formatFactory{logger.With("component", "k8s")}, logsapi.LoggingStableOptions)
}

type formatFactory struct{ logger *slog.Logger }

func (f formatFactory) Create(logsapi.LoggingConfiguration, logsapi.LoggingOptions) (logr.Logger, logsapi.RuntimeControl) {
	return logr.FromSlogHandler(f.logger.Handler()), logsapi.RuntimeControl{}
}
