package config

import (
	"errors"
	"net"
	"net/netip"
	"os"
)

// OSHost is the real machine, for BuildServer.
type OSHost struct{}

// Hostname returns the kernel hostname.
func (OSHost) Hostname() (string, error) { return os.Hostname() }

// DefaultIP returns the first global unicast IPv4 address of an interface
// that is up, preferring the interface of the default route when there is
// one. In a namespace with no default route (tests, air-gapped hosts) it still
// finds the node's address.
func (OSHost) DefaultIP() (netip.Addr, error) {
	if a, ok := outboundIP(); ok {
		return a, nil
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		if a, ok := firstIPv4(ifc); ok {
			return a, nil
		}
	}
	return netip.Addr{}, errors.New("no interface that is up has a global IPv4 address")
}

// outboundIP asks the kernel which source address it would use for an
// off-machine destination. UDP "connect" sends no packet.
func outboundIP() (netip.Addr, bool) {
	c, err := net.Dial("udp4", "192.0.2.1:9") // TEST-NET-1, never routed
	if err != nil {
		return netip.Addr{}, false
	}
	defer c.Close()
	ap, err := netip.ParseAddrPort(c.LocalAddr().String())
	if err != nil || !ap.Addr().IsGlobalUnicast() {
		return netip.Addr{}, false
	}
	return ap.Addr(), true
}

func firstIPv4(ifc net.Interface) (netip.Addr, bool) {
	addrs, err := ifc.Addrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err == nil && pfx.Addr().Is4() && pfx.Addr().IsGlobalUnicast() {
			return pfx.Addr(), true
		}
	}
	return netip.Addr{}, false
}
