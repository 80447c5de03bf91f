package batchapi

import (
	"fmt"
	"io"
	"log/slog"
)

const redacted = "[redacted]"

// Secret is a credential (the API token or a batch token). Every way of printing it, logging
// it or encoding it as JSON yields "[redacted]"; the value is reached only by an explicit
// conversion, string(s), at the one place that puts it on the wire.
type Secret string

// String implements fmt.Stringer.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer, so %#v does not reveal the value either.
func (Secret) GoString() string { return redacted }

// Format implements fmt.Formatter: every verb, including %s, %q, %v, %x and %d, prints
// "[redacted]". Without it %x or %q would format the underlying string.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler, which covers map keys, XML and slog's text
// handler if LogValue were bypassed.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }
