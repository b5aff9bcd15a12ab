package config

import (
	"fmt"
	"time"

	"github.com/monokube/monokube/internal/pki"
)

// TestCertLifetimeEnv names the variable that, in tests only, shortens the life of the leaf
// certificates a server issues (a duration such as "8m"), so that a test
// sees them renewed while the server runs instead of waiting a year.
const TestCertLifetimeEnv = "MONOKUBE_TEST_CERT_LIFETIME"

// minTestLifetime is the shortest test lifetime: client-go looks for a
// renewed client certificate every 5 minutes and then closes connections
// made with the old one, which must not expire before that (a leaf is
// renewed when 3/4 of its life is left: 6 minutes of 8).
const minTestLifetime = 8 * time.Minute

// Certs is how long the leaf certificates a server issues live, and how
// often a running server looks for ones due for renewal.
type Certs struct {
	Lifetime   pki.Lifetime
	CheckEvery time.Duration
}

// DefaultCerts are leaves that live a year and are renewed in their last 120
// days, checked daily (and at every start).
func DefaultCerts() Certs {
	return Certs{Lifetime: pki.DefaultLifetime(), CheckEvery: 24 * time.Hour}
}

// CertsFromEnv is DefaultCerts, or with v (TestCertLifetimeEnv's value)
// set, leaves that live v, renewed after a quarter of it and checked
// every sixteenth.
func CertsFromEnv(v string) (Certs, error) {
	if v == "" {
		return DefaultCerts(), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < minTestLifetime {
		return Certs{}, fmt.Errorf("%s=%q: give a duration of %s or more (it is for tests; unset it to get certificates that last a year)", TestCertLifetimeEnv, v, minTestLifetime)
	}
	return Certs{Lifetime: pki.ShortLifetime(d), CheckEvery: d / 16}, nil
}
