// Command echo is the program in the e2e test image monokube.local/echo:test
// (built by `make test-images`, never embedded in monokube). It is the image's
// entrypoint, /echo, and has three modes:
//
//	/echo                  serve HTTP on :8080 (or :$PORT); GET / answers
//	                       "hello from <hostname>"; exits 0 on SIGTERM/SIGINT
//	/echo echo-cmd ARGS... print ARGS joined by spaces (for kubectl exec)
//	/echo get URL          print the body of an HTTP GET with a 5 s timeout
//	                       (to reach Services from inside a pod)
//	/echo rtt HOST:PORT N  time N TCP connects (at most 1000, 5 s each) and
//	                       print the median in microseconds
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// getTimeout bounds the whole GET of the get mode.
const getTimeout = 5 * time.Second

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return serve(ctx, listenAddr())
	}
	switch args[0] {
	case "echo-cmd":
		_, err := fmt.Println(strings.Join(args[1:], " "))
		return err
	case "get":
		if len(args) != 2 {
			return errors.New("usage: echo get URL")
		}
		return get(args[1], os.Stdout)
	case "rtt":
		n, err := rttCount(args)
		if err != nil {
			return err
		}
		return rtt(args[1], n, os.Stdout)
	default:
		return fmt.Errorf("unknown mode %q; usage: echo [echo-cmd ARGS... | get URL]", args[0])
	}
}

func rttCount(args []string) (int, error) {
	var n int
	if len(args) != 3 {
		return 0, errors.New("usage: echo rtt HOST:PORT N")
	}
	if _, err := fmt.Sscan(args[2], &n); err != nil || n < 1 || n > 1000 {
		return 0, fmt.Errorf("rtt: N %q must be 1 to 1000", args[2])
	}
	return n, nil
}

// rtt times n TCP connects (SYN, SYN-ACK: one round trip each) to addr and
// prints the median in microseconds.
func rtt(addr string, n int, w io.Writer) error {
	times := make([]time.Duration, 0, n)
	for range n {
		start := time.Now()
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return err
		}
		times = append(times, time.Since(start))
		c.Close()
	}
	slices.Sort(times)
	_, err := fmt.Fprintln(w, times[len(times)/2].Microseconds())
	return err
}

func listenAddr() string {
	if p := os.Getenv("PORT"); p != "" {
		return ":" + p
	}
	return ":8080"
}

// serve answers HTTP on addr until ctx is canceled, then shuts down cleanly.
func serve(ctx context.Context, addr string) error {
	host, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("read hostname: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: handler(host), ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("echo listening on %s\n", addr)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}

// handler answers GET / and logs one line per request to stdout.
func handler(host string) http.Handler {
	logger := log.New(os.Stdout, "", log.LstdFlags)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "hello from %s\n", host)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger.Printf("%s %s %s", r.RemoteAddr, r.Method, r.URL.Path)
		mux.ServeHTTP(w, r)
	})
}

// get prints the body of url to w; a non-2xx status is an error.
func get(url string, w io.Writer) error {
	client := &http.Client{Timeout: getTimeout}
	resp, err := client.Get(url)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("get %s: status %s", url, resp.Status)
	}
	return nil
}
