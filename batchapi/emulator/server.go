package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is an Emulator listening on a loopback port, like httptest.Server.
type Server struct {
	// URL is the base URL, "http://127.0.0.1:port", with no trailing slash.
	URL      string
	Emulator *Emulator

	srv  *http.Server
	done chan struct{}

	mu      sync.Mutex
	closing bool
	fresh   map[net.Conn]struct{} // connections that have not sent a request yet
}

// NewServer starts an Emulator built from opts on 127.0.0.1 (or [::1]) on a free port.
// It panics if no loopback port can be had, as httptest.NewServer does. Call Close when
// done.
func NewServer(opts Options) *Server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		if ln, err = net.Listen("tcp6", "[::1]:0"); err != nil {
			panic(fmt.Sprintf("emulator: listen on a loopback port: %v", err))
		}
	}
	e := New(opts)
	s := &Server{
		URL:      "http://" + ln.Addr().String(),
		Emulator: e,
		srv:      newHTTPServer(e),
		done:     make(chan struct{}),
		fresh:    make(map[net.Conn]struct{}),
	}
	s.srv.ConnState = s.trackConn
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	return s
}

// APIURL is the global host's base, as batchapi.Config.APIURL wants it.
func (s *Server) APIURL() string { return s.URL + "/client/v4" }

// BatchURL is the batch host's base, as batchapi.Config.BatchURL wants it.
func (s *Server) BatchURL() string { return s.URL }

// Close stops accepting connections and blocks until every request in flight has been
// answered (or dropped).
func (s *Server) Close() {
	// http.Server.Shutdown treats a connection that never sent a request as busy for its
	// first 5 seconds, and clients often dial a spare one; like httptest, close those now.
	s.mu.Lock()
	s.closing = true
	for c := range s.fresh {
		c.Close()
	}
	s.mu.Unlock()
	s.srv.Shutdown(context.Background())
	<-s.done
}

func (s *Server) trackConn(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateNew:
		if s.closing {
			c.Close()
			return
		}
		s.fresh[c] = struct{}{}
	default:
		delete(s.fresh, c)
	}
}

// Serve serves e on ln until ctx is done, then shuts down gracefully: requests in flight
// get up to 10 seconds to finish. It returns nil after a shutdown caused by ctx, and the
// error otherwise.
func Serve(ctx context.Context, ln net.Listener, e *Emulator) error {
	srv := newHTTPServer(e)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve emulator on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = srv.Close()
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shut down emulator on %s: %w", ln.Addr(), err)
	}
	return nil
}

func newHTTPServer(e *Emulator) *http.Server {
	// A slow-header client must not pin a connection forever; bodies may be slow (large
	// uploads over a throttled link), so only the header read is bounded.
	return &http.Server{Handler: e, ReadHeaderTimeout: 30 * time.Second}
}
