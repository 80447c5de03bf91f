package batchapi

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// The JSON shapes on the wire. They stay apart from the domain types in types.go so the API's
// naming quirks (meta vs metadata, null creator, string error codes) end here.

// wireEnvelope covers both answer styles: the v4 envelope (success, errors, result) and the
// bare {"code":"103","message":"forbidden endpoint"} the batch host sends for a route it does
// not serve.
type wireEnvelope struct {
	Success  *bool           `json:"success"`
	Errors   []wireMessage   `json:"errors"`
	Messages []wireMessage   `json:"messages"`
	Result   json.RawMessage `json:"result"`

	Code    *wireCode `json:"code"`
	Message string    `json:"message"`
}

type wireMessage struct {
	Code    wireCode `json:"code"`
	Message string   `json:"message"`
}

// wireCode accepts a code as a JSON number or a JSON string, since both occur.
type wireCode int

func (c *wireCode) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			// A code that is not a number keeps 0; the message still says what happened.
			return nil
		}
		*c = wireCode(n)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	i, err := n.Int64()
	if err != nil {
		return nil
	}
	*c = wireCode(i)
	return nil
}

type wireBatchToken struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expiresAt"`
}

type wireImage struct {
	ID       string         `json:"id"`
	Filename string         `json:"filename"`
	Meta     map[string]any `json:"meta"`
	// Some documentation examples show "metadata"; the live API says "meta". Accept both.
	Metadata          map[string]any `json:"metadata"`
	Creator           *string        `json:"creator"`
	RequireSignedURLs bool           `json:"requireSignedURLs"`
	Uploaded          string         `json:"uploaded"`
	Variants          []string       `json:"variants"`
	Draft             bool           `json:"draft"`
}

func (w wireImage) image() Image {
	img := Image{
		ID:                w.ID,
		Filename:          w.Filename,
		Meta:              w.Meta,
		RequireSignedURLs: w.RequireSignedURLs,
		Variants:          w.Variants,
		Draft:             w.Draft,
	}
	if img.Meta == nil {
		img.Meta = w.Metadata
	}
	if w.Creator != nil {
		img.Creator = *w.Creator
	}
	// A timestamp we cannot read is not worth failing the call for.
	if t, err := time.Parse(time.RFC3339Nano, w.Uploaded); err == nil {
		img.Uploaded = t
	}
	return img
}

type wireListResult struct {
	Images            []wireImage `json:"images"`
	ContinuationToken *string     `json:"continuation_token"`
}

type wireDirectUpload struct {
	ID        string `json:"id"`
	UploadURL string `json:"uploadURL"`
}

// wirePatch is the PATCH body. Metadata is pre-encoded so that an empty map (clear all) is
// sent while a nil map (leave alone) is omitted; omitempty on a map cannot tell them apart.
type wirePatch struct {
	Metadata          json.RawMessage `json:"metadata,omitempty"`
	RequireSignedURLs *bool           `json:"requireSignedURLs,omitempty"`
	Creator           *string         `json:"creator,omitempty"`
}
