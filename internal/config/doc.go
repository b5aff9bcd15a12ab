// Package config holds monokube's settings as plain data.
//
// The flow is: defaults (DefaultServerInput) → config file (LoadFile) → flags
// the user set (Overlay) → BuildServer, which parses and validates everything
// once and returns an immutable Server that is passed down to components.
// Config-file keys are the long flag names. Nothing here touches the data dir
// or holds runtime handles.
package config
