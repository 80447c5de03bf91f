package emulator

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Wire types, written from the API reference. They are deliberately not shared with the
// batchapi client, so a wire mistake on either side shows up as a failing test.

type wireEnvelope struct {
	Success  bool          `json:"success"`
	Errors   []wireMessage `json:"errors"`
	Messages []wireMessage `json:"messages"`
	Result   any           `json:"result"`
	// ResultInfo is set (to null) only where the docs' examples show it.
	ResultInfo json.RawMessage `json:"result_info,omitempty"`
}

type wireMessage struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// wireBare is the batch host's non-envelope error body; its code is a string.
type wireBare struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type wireImage struct {
	ID                string          `json:"id"`
	Filename          string          `json:"filename"`
	Meta              json.RawMessage `json:"meta,omitempty"`
	Creator           *string         `json:"creator"`
	RequireSignedURLs bool            `json:"requireSignedURLs"`
	Uploaded          string          `json:"uploaded"`
	Variants          []string        `json:"variants"`
	Draft             bool            `json:"draft,omitempty"`
}

type wireBatchToken struct {
	Token     string `json:"token"`
	ExpiresAt string `json:"expiresAt"`
}

type wireList struct {
	Images            []wireImage `json:"images"`
	ContinuationToken *string     `json:"continuation_token"`
}

type wireListV1 struct {
	Images []wireImage `json:"images"`
}

type wireDirectUpload struct {
	ID        string `json:"id"`
	UploadURL string `json:"uploadURL"`
}

type wireStats struct {
	Count struct {
		Allowed int `json:"allowed"`
		Current int `json:"current"`
	} `json:"count"`
}

// wirePatch is the PATCH body. Raw fields tell "absent" from "null" from a value.
type wirePatch struct {
	Metadata          json.RawMessage `json:"metadata"`
	RequireSignedURLs json.RawMessage `json:"requireSignedURLs"`
	Creator           json.RawMessage `json:"creator"`
}

const uploadedLayout = "2006-01-02T15:04:05.000Z07:00"

// response is what an operation produces. Operations build it instead of writing to the
// ResponseWriter so the dispatcher can apply the change and then drop the answer.
type response struct {
	status      int
	contentType string
	retryAfter  int // seconds; 0 = no header
	body        []byte
}

func okResponse(result any) response {
	return envelopeResponse(http.StatusOK, wireEnvelope{
		Success: true, Errors: []wireMessage{}, Messages: []wireMessage{}, Result: result,
	})
}

func errResponse(status, code int, msg string) response {
	return envelopeResponse(status, wireEnvelope{
		Errors: []wireMessage{{Code: code, Message: msg}}, Messages: []wireMessage{},
	})
}

func envelopeResponse(status int, env wireEnvelope) response {
	b, err := json.Marshal(env)
	if err != nil {
		// Only our own types are marshalled; a failure here is a bug in the emulator.
		panic("emulator: marshal response: " + err.Error())
	}
	return response{status: status, contentType: "application/json", body: b}
}

func bareResponse(status int, code, msg string) response {
	b, _ := json.Marshal(wireBare{Code: code, Message: msg})
	return response{status: status, contentType: "application/json", body: b}
}

func (r response) write(w http.ResponseWriter) {
	h := w.Header()
	if r.contentType != "" {
		h.Set("Content-Type", r.contentType)
	}
	if r.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(r.retryAfter))
	}
	h.Set("Content-Length", strconv.Itoa(len(r.body)))
	w.WriteHeader(r.status)
	w.Write(r.body)
}

// Error codes and messages used by the emulator (section 4 of the reference).
const (
	codeBadRequest    = 5400
	codeForbidden     = 5403
	codeNotFound      = 5404
	codeTimeout       = 5408
	codeExists        = 5409
	codeBadID         = 5411
	codeTooLarge      = 5413
	codeNotForm       = 5415
	codeQuota         = 5453
	codeBadImage      = 5455
	codeInternal      = 5500
	codeUnavailable   = 5503
	codeNoRoute       = 7003
	codeAuth          = 10000
	codeRateLimited   = 971
	msgAuth           = "Authentication error"
	msgNotFound       = "Image not found"
	msgExists         = "Resource already exists. Verify the resource information and try again."
	msgNotForm        = "Images must be uploaded as a form, not as raw image data. Please use multipart/form-data format"
	msgFormFields     = "Bad request: Error parsing form fields"
	msgRateLimited    = "Please wait and consider throttling your request speed"
	msgNoRoute        = "No route for the URI"
	msgForbiddenRoute = "forbidden endpoint"
)

func notFound() response { return errResponse(http.StatusNotFound, codeNotFound, msgNotFound) }

func badRequest(msg string) response {
	return errResponse(http.StatusBadRequest, codeBadRequest, "Bad request: "+msg)
}

func noRoute() response { return errResponse(http.StatusNotFound, codeNoRoute, msgNoRoute) }

func forbiddenEndpoint() response {
	return bareResponse(http.StatusForbidden, "103", msgForbiddenRoute)
}

// injected is the answer FailNext and SetFailRate give for a status.
func injected(status int) response {
	code, msg := codeInternal, "Internal error (injected by the emulator)"
	retry := 0
	switch status {
	case http.StatusTooManyRequests:
		code, msg, retry = codeRateLimited, msgRateLimited, 1
	case http.StatusServiceUnavailable:
		code, msg, retry = codeUnavailable, "Service unavailable (injected by the emulator)", 1
	case http.StatusUnauthorized, http.StatusForbidden:
		code, msg = codeAuth, msgAuth
	case http.StatusNotFound:
		code, msg = codeNotFound, msgNotFound
	case http.StatusConflict:
		code, msg = codeExists, msgExists
	case http.StatusRequestTimeout:
		code, msg = codeTimeout, "Client sent the upload too slowly (injected by the emulator)"
	case http.StatusRequestEntityTooLarge:
		code, msg = codeTooLarge, "Maximum image size reached (injected by the emulator)"
	case http.StatusUnsupportedMediaType:
		code, msg = codeNotForm, msgNotForm
	case http.StatusBadRequest:
		code, msg = codeBadRequest, "Bad request (injected by the emulator)"
	}
	r := errResponse(status, code, msg)
	r.retryAfter = retry
	return r
}
