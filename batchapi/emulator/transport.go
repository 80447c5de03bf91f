package emulator

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// ErrDropped is what Transport returns for a call DropResponses dropped: the change was
// applied, but no answer came back.
var ErrDropped = errors.New("emulator: connection closed without a response")

// Transport returns an http.RoundTripper that hands every request straight to e, in
// process, whatever its host. It is for tests inside testing/synctest bubbles, where
// loopback sockets would escape the fake clock: with Options.Now left nil, the token
// lifetimes, rate limits and latency then all run on the bubble's time.
func (e *Emulator) Transport() http.RoundTripper { return transport{e} }

type transport struct{ e *Emulator }

func (t transport) RoundTrip(req *http.Request) (res *http.Response, err error) {
	r := req.Clone(req.Context())
	if r.Body == nil {
		r.Body = http.NoBody
	} else {
		defer req.Body.Close()
	}
	if r.Host == "" {
		r.Host = req.URL.Host
	}
	r.RequestURI = req.URL.RequestURI()
	r.RemoteAddr = "127.0.0.1:1"
	w := &recorder{header: make(http.Header)}
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				panic(v)
			}
			res, err = nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), ErrDropped)
		}
	}()
	t.e.ServeHTTP(w, r)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	body := w.body.Bytes()
	if req.Method == http.MethodHead {
		body = nil
	}
	res = &http.Response{
		Status:        strconv.Itoa(w.status) + " " + http.StatusText(w.status),
		StatusCode:    w.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        w.header,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(w.body.Len()),
		Request:       req,
	}
	return res, nil
}

// recorder is a minimal ResponseWriter that keeps the answer in memory.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *recorder) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}
