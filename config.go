package main

// config.go: the TOML configuration file (`run --config`, `sync --config`, `config check`),
// its validation, and where the API token comes from.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/cfimgsync/cfimgsync/batchapi"
	"github.com/cfimgsync/cfimgsync/syncer"
	"github.com/cfimgsync/cfimgsync/watcher"
)

// Defaults that the configuration reference (README, packaging/config.example.toml) repeats.
const (
	defaultConfigPath    = "/etc/cfimgsync/config.toml"
	defaultMetricsListen = "127.0.0.1:9464"
	defaultSettle        = 2 * time.Second
	defaultRescan        = time.Hour
	defaultDeleteDelay   = 24 * time.Hour
	// credentialName is the file systemd's LoadCredential= puts in $CREDENTIALS_DIRECTORY.
	credentialName = "cloudflare-api-token"
	// maxStaticMetadata leaves room, under the API's 1024-byte metadata limit, for the
	// path, SHA-256 and size the syncer adds to every image.
	maxStaticMetadata = 512
)

// fileConfig is the TOML document. Every field has a plain type so that a value of the
// wrong type is reported by the decoder with its position; everything else is checked by
// resolve, which knows each key's line from a keyLines index. Pointers tell "absent" from
// an explicit zero.
type fileConfig struct {
	AccountID     string       `toml:"account_id"`
	APITokenFile  string       `toml:"api_token_file"`
	APIURL        string       `toml:"api_url"`
	BatchURL      string       `toml:"batch_url"`
	BatchTokens   *int         `toml:"batch_tokens"`
	Rate          *float64     `toml:"rate"`
	Concurrency   *int         `toml:"concurrency"`
	State         string       `toml:"state"`
	LogFormat     string       `toml:"log_format"`
	MetricsListen *string      `toml:"metrics_listen"`
	ManifestFile  string       `toml:"manifest_file"`
	Folders       []fileFolder `toml:"folder"`
}

type fileFolder struct {
	Path           string         `toml:"path"`
	Name           string         `toml:"name"`
	Prefix         string         `toml:"prefix"`
	IDScheme       string         `toml:"id_scheme"`
	VersionedGrace string         `toml:"versioned_grace"`
	Ignore         []string       `toml:"ignore"`
	DeleteMode     string         `toml:"delete_mode"`
	DeleteDelay    string         `toml:"delete_delay"`
	MaxDelete      *int           `toml:"max_delete"`
	Settle         string         `toml:"settle"`
	RescanInterval string         `toml:"rescan_interval"`
	Metadata       map[string]any `toml:"metadata"`
}

// config is the resolved configuration: defaults applied, environment consulted, values
// checked. It is immutable once built; a reload builds a new one.
type config struct {
	file          string // the file it was read from; "" when built from flags alone
	accountID     string
	apiTokenFile  string
	apiURL        string
	batchURL      string
	batchTokens   int
	rate          float64
	concurrency   int
	state         string
	logFormat     string
	metricsListen string // "" turns the metrics listener off
	manifestFile  string
	folders       []folderConfig
}

type folderConfig struct {
	name           string
	path           string
	prefix         string
	idScheme       string
	versionedGrace time.Duration
	ignore         []string
	deleteMode     string
	deleteDelay    time.Duration
	maxDelete      int
	settle         time.Duration
	rescanInterval time.Duration
	metadata       map[string]any
}

// configError is one problem in the configuration, located by file, line and key, so an
// operator can go straight to it. It is a usage error (exit code 2).
type configError struct {
	file string
	line int // 0 when the key is absent from the file
	key  string
	msg  string
}

func (e *configError) Error() string {
	var b strings.Builder
	b.WriteString(e.file)
	if e.line > 0 {
		b.WriteString(":" + strconv.Itoa(e.line))
	}
	b.WriteString(": ")
	if e.key != "" {
		b.WriteString(e.key + ": ")
	}
	b.WriteString(e.msg)
	return b.String()
}

// configErrors is every problem found in one file, reported together so that fixing a
// config does not take one restart per mistake.
type configErrors []*configError

func (es configErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return "invalid configuration:\n  " + strings.Join(lines, "\n  ")
}

// loadConfig reads and resolves the file at path. getenv supplies the environment's
// fallbacks (os.Getenv outside tests).
func loadConfig(path string, getenv func(string) string) (*config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, usageError{fmt.Sprintf("read config: %v", err)}
	}
	return parseConfig(path, data, getenv)
}

// parseConfig decodes data strictly (unknown keys are errors) and resolves it.
func parseConfig(name string, data []byte, getenv func(string) string) (*config, error) {
	var fc fileConfig
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return nil, decodeError(name, err)
	}
	lines, err := indexKeyLines(data)
	if err != nil {
		return nil, &configError{file: name, msg: err.Error()}
	}
	return fc.resolve(name, lines, getenv)
}

// decodeError turns go-toml's errors into configErrors naming the key and line.
func decodeError(name string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		es := make(configErrors, 0, len(strict.Errors))
		for _, de := range strict.Errors {
			row, _ := de.Position()
			es = append(es, &configError{file: name, line: row, key: strings.Join(de.Key(), "."),
				msg: "unknown key (see packaging/config.example.toml for the keys there are)"})
		}
		return es
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		// The decoder names Go types ("struct field main.fileConfig.Rate of type float64");
		// an operator needs the TOML type that was expected instead.
		if i := strings.Index(msg, " into "); i >= 0 && strings.HasPrefix(msg, "cannot decode") {
			msg = msg[:i] + ": want a " + tomlType(msg[i:])
		}
		key := strings.Join(de.Key(), ".")
		if key == "" {
			msg = fmt.Sprintf("column %d: %s", col, msg)
		}
		return configErrors{{file: name, line: row, key: key, msg: msg}}
	}
	return usageError{fmt.Sprintf("%s: %v", name, err)}
}

// tomlType names the TOML type the decoder wanted, from its Go-flavoured message
// ("... into struct field main.fileConfig.Rate of type float64").
func tomlType(s string) string {
	if i := strings.LastIndex(s, " of type "); i >= 0 {
		s = s[i+len(" of type "):]
	}
	switch {
	case strings.HasPrefix(s, "[]string"):
		return "list of strings"
	case strings.HasPrefix(s, "map["):
		return "table"
	case strings.HasPrefix(s, "[]"):
		return "list of tables"
	case strings.HasPrefix(s, "float"):
		return "number"
	case strings.HasPrefix(s, "int"), strings.HasPrefix(s, "*int"):
		return "integer"
	case strings.HasPrefix(s, "*float"):
		return "number"
	case strings.HasPrefix(s, "string"), strings.HasPrefix(s, "*string"):
		return "string"
	}
	return "value of another type"
}

// keyLines maps a key path ("rate", "folder.1.settle") to the line it is on.
type keyLines map[string]int

// indexKeyLines walks the document's syntax tree to find the line of every key, because
// the decoder only locates the errors it finds itself, not those found while resolving.
func indexKeyLines(data []byte) (keyLines, error) {
	lines := keyLines{}
	arrays := map[string]int{} // array-of-tables key → index of the current element
	var table string
	var p unstable.Parser
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		var parts []string
		var first *unstable.Node
		for it := e.Key(); it.Next(); {
			n := it.Node()
			if first == nil {
				first = n
			}
			parts = append(parts, string(n.Data))
		}
		line := 0
		if first != nil {
			line = p.Shape(first.Raw).Start.Line
		}
		key := strings.Join(parts, ".")
		switch e.Kind {
		case unstable.Table:
			table = key
			// A sub-table of an array element ([folder.metadata]) belongs to the last element.
			if i := strings.IndexByte(key, '.'); i > 0 {
				if n, ok := arrays[key[:i]]; ok {
					table = key[:i] + "." + strconv.Itoa(n) + key[i:]
				}
			}
			lines[table] = line
		case unstable.ArrayTable:
			n, ok := arrays[key]
			if ok {
				n++
			}
			arrays[key] = n
			table = key + "." + strconv.Itoa(n)
			lines[table] = line
		case unstable.KeyValue:
			full := key
			if table != "" {
				full = table + "." + key
			}
			lines[full] = line
		}
	}
	return lines, p.Error()
}

// resolver collects errors while a fileConfig is resolved.
type resolver struct {
	file  string
	lines keyLines
	errs  configErrors
}

// fail records a problem with key (a lines key such as "folder.0.settle").
func (r *resolver) fail(key, format string, args ...any) {
	r.errs = append(r.errs, &configError{file: r.file, line: r.lines[key], key: displayKey(key), msg: fmt.Sprintf(format, args...)})
}

// displayKey writes "folder.0.settle" as an operator reads it: "folder[0].settle".
func displayKey(key string) string {
	parts := strings.Split(key, ".")
	var b strings.Builder
	for i, p := range parts {
		if _, err := strconv.Atoi(p); err == nil && i > 0 {
			b.WriteString("[" + p + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

func (r *resolver) duration(key, s string, def, min time.Duration) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		r.fail(key, "%q is not a duration (write it like \"2s\", \"500ms\" or \"1h30m\")", s)
		return def
	}
	if d < min {
		r.fail(key, "%s is too short (at least %s)", s, min)
		return def
	}
	return d
}

var (
	hexAccount = regexp.MustCompile(`^[0-9a-f]{32}$`)
	folderName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// resolve applies defaults and the environment and checks every value.
func (fc *fileConfig) resolve(name string, lines keyLines, getenv func(string) string) (*config, error) {
	r := &resolver{file: name, lines: lines}
	c := &config{
		file:          name,
		accountID:     fc.AccountID,
		apiTokenFile:  fc.APITokenFile,
		apiURL:        fc.APIURL,
		batchURL:      fc.BatchURL,
		batchTokens:   1,
		rate:          200,
		concurrency:   16,
		state:         fc.State,
		logFormat:     fc.LogFormat,
		metricsListen: defaultMetricsListen,
		manifestFile:  fc.ManifestFile,
	}
	if c.accountID == "" {
		c.accountID = getenv("CLOUDFLARE_ACCOUNT_ID")
	}
	switch {
	case c.accountID == "":
		r.fail("account_id", "missing: set account_id (or CLOUDFLARE_ACCOUNT_ID) to your Cloudflare account ID")
	case !hexAccount.MatchString(c.accountID):
		r.fail("account_id", "%q is not an account ID (32 lowercase hexadecimal characters, from the dashboard's Overview page)", c.accountID)
	}
	if c.apiTokenFile != "" && !filepath.IsAbs(c.apiTokenFile) {
		r.fail("api_token_file", "%q must be an absolute path", c.apiTokenFile)
	}
	if c.apiURL == "" {
		c.apiURL = getenv("CFIMGSYNC_API_URL")
	}
	if c.batchURL == "" {
		c.batchURL = getenv("CFIMGSYNC_BATCH_URL")
	}
	for key, u := range map[string]string{"api_url": c.apiURL, "batch_url": c.batchURL} {
		if u != "" {
			if err := checkEndpoint(u); err != nil {
				r.fail(key, "%v", err)
			}
		}
	}
	if fc.BatchTokens != nil {
		if c.batchTokens = *fc.BatchTokens; c.batchTokens < 1 || c.batchTokens > 64 {
			r.fail("batch_tokens", "%d is out of range (1 to 64)", c.batchTokens)
		}
	}
	if fc.Rate != nil {
		if c.rate = *fc.Rate; c.rate <= 0 || c.rate > 200 {
			r.fail("rate", "%g is out of range (requests per second per batch token, above 0 and at most 200, the API's limit)", c.rate)
		}
	}
	if fc.Concurrency != nil {
		if c.concurrency = *fc.Concurrency; c.concurrency < 1 || c.concurrency > 256 {
			r.fail("concurrency", "%d is out of range (1 to 256)", c.concurrency)
		}
	}
	if c.state == "" {
		c.state = defaultStatePath()
	} else if !filepath.IsAbs(c.state) {
		r.fail("state", "%q must be an absolute path", c.state)
	}
	switch c.logFormat {
	case "":
		c.logFormat = "auto"
	case "auto", "text", "json":
	default:
		r.fail("log_format", "%q is not one of auto, text, json", c.logFormat)
	}
	if fc.MetricsListen != nil {
		c.metricsListen = *fc.MetricsListen
		if c.metricsListen == "off" {
			c.metricsListen = ""
		}
		if c.metricsListen != "" {
			if _, port, err := net.SplitHostPort(c.metricsListen); err != nil || port == "" {
				r.fail("metrics_listen", "%q is not host:port (for example %q; \"off\" turns metrics off)", c.metricsListen, defaultMetricsListen)
			}
		}
	}
	if c.manifestFile != "" && !filepath.IsAbs(c.manifestFile) {
		r.fail("manifest_file", "%q must be an absolute path", c.manifestFile)
	}

	if len(fc.Folders) == 0 {
		r.fail("folder", "no [[folder]] section: add one with at least path = \"/srv/images\"")
	}
	names := map[string]int{}
	for i, ff := range fc.Folders {
		c.folders = append(c.folders, r.folder(i, ff, names))
	}
	r.nested(c.folders)
	if len(r.errs) > 0 {
		return nil, r.errs
	}
	return c, nil
}

func (r *resolver) folder(i int, ff fileFolder, names map[string]int) folderConfig {
	k := func(key string) string { return "folder." + strconv.Itoa(i) + "." + key }
	f := folderConfig{
		path:       ff.Path,
		name:       ff.Name,
		prefix:     ff.Prefix,
		idScheme:   ff.IDScheme,
		ignore:     ff.Ignore,
		deleteMode: ff.DeleteMode,
		metadata:   ff.Metadata,
	}
	switch {
	case f.path == "":
		r.errs = append(r.errs, &configError{file: r.file, line: r.lines["folder."+strconv.Itoa(i)],
			key: displayKey("folder." + strconv.Itoa(i)), msg: "path is missing"})
	case !filepath.IsAbs(f.path):
		r.fail(k("path"), "%q must be an absolute path", f.path)
	default:
		f.path = filepath.Clean(f.path)
	}
	if f.name == "" && f.path != "" {
		f.name = deriveFolderName(f.path)
	}
	if f.name != "" {
		if !folderName.MatchString(f.name) {
			r.fail(k("name"), "%q is not a folder name (letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit)", f.name)
		} else if j, dup := names[f.name]; dup {
			key := k("name")
			if ff.Name == "" {
				key = k("path")
			}
			r.fail(key, "folder name %q is already used by folder[%d]; give each folder its own name = \"...\"", f.name, j)
		} else {
			names[f.name] = i
		}
	}
	if strings.HasPrefix(f.prefix, "/") || !utf8.ValidString(f.prefix) {
		r.fail(k("prefix"), "%q must be valid UTF-8 and must not start with \"/\" (image IDs cannot)", f.prefix)
	}
	known := true
	switch f.idScheme {
	case "":
		f.idScheme = "path"
	case "path", "versioned", "auto":
	default:
		known = false
		r.fail(k("id_scheme"), "%q is not an ID scheme (one of path, versioned, auto)", f.idScheme)
	}
	if _, err := syncer.NewIDScheme(f.idScheme, f.prefix); known && err != nil {
		key := "prefix"
		if f.idScheme == "auto" {
			key = "id_scheme"
		}
		r.fail(k(key), "%v", err)
	}
	f.versionedGrace = r.duration(k("versioned_grace"), ff.VersionedGrace, 0, 0)
	if ff.VersionedGrace != "" && f.idScheme != "versioned" {
		r.fail(k("versioned_grace"), "applies only to id_scheme = \"versioned\" (the folder's scheme is %q)", f.idScheme)
	}
	if _, err := watcher.NewMatcher(f.ignore); err != nil {
		r.fail(k("ignore"), "%v", err)
	}
	switch f.deleteMode {
	case "":
		f.deleteMode = syncer.DeleteMirror
	case syncer.DeleteMirror, syncer.DeleteKeep, syncer.DeleteDelay:
	default:
		r.fail(k("delete_mode"), "%q is not one of mirror, keep, delay", f.deleteMode)
	}
	f.deleteDelay = r.duration(k("delete_delay"), ff.DeleteDelay, defaultDeleteDelay, time.Minute)
	if ff.DeleteDelay != "" && f.deleteMode != syncer.DeleteDelay {
		r.fail(k("delete_delay"), "applies only to delete_mode = \"delay\" (the folder's mode is %q)", f.deleteMode)
	}
	if ff.MaxDelete != nil {
		if f.maxDelete = *ff.MaxDelete; f.maxDelete < 1 {
			r.fail(k("max_delete"), "%d must be at least 1 (leave it out for the default: half the folder or 1000, whichever is smaller; delete_mode = \"keep\" deletes nothing)", f.maxDelete)
		}
	}
	f.settle = r.duration(k("settle"), ff.Settle, defaultSettle, 10*time.Millisecond)
	f.rescanInterval = r.duration(k("rescan_interval"), ff.RescanInterval, defaultRescan, time.Second)
	if f.metadata != nil {
		b, err := json.Marshal(f.metadata)
		switch {
		case err != nil:
			r.fail(k("metadata"), "cannot be sent as JSON: %v", err)
		case len(b) > maxStaticMetadata:
			r.fail(k("metadata"), "is %d bytes as JSON, over %d (the API allows 1024 per image, and the path, hash and size need the rest)", len(b), maxStaticMetadata)
		}
	}
	return f
}

// nested refuses folders inside one another: a file would be two images with two owners.
func (r *resolver) nested(fs []folderConfig) {
	for i, a := range fs {
		for j, b := range fs {
			if i == j || a.path == "" || b.path == "" {
				continue
			}
			if a.path == b.path && i < j {
				r.fail("folder."+strconv.Itoa(j)+".path", "%q is also folder[%d]'s path", b.path, i)
			} else if strings.HasPrefix(b.path, a.path+string(filepath.Separator)) {
				r.fail("folder."+strconv.Itoa(j)+".path", "%q is inside folder[%d] (%s); folders must not nest (use ignore patterns instead)", b.path, i, a.path)
			}
		}
	}
}

// deriveFolderName makes an index key from a folder's path: its last element, with
// characters a name may not hold replaced.
func deriveFolderName(p string) string {
	base := filepath.Base(p)
	b := []byte(base)
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-') {
			b[i] = '-'
		}
	}
	name := strings.TrimLeft(string(b), ".-_")
	if len(name) > 64 {
		name = name[:64]
	}
	if name == "" {
		return "default"
	}
	return name
}

// checkEndpoint refuses endpoints the token must not be sent to: anything but https,
// except plain http to a loopback host (the emulator).
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q: plain http is allowed only to a loopback host (the emulator); use https", raw)
	}
	return fmt.Errorf("%q: scheme must be https", raw)
}

// isLoopback reports whether host names this machine only.
func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// tokenSource says where the API token came from, for `config check` and the start-up log
// (never the token itself).
type tokenSource string

// loadToken finds the API token: api_token_file if the config names one, else the
// systemd credential, else $CLOUDFLARE_API_TOKEN. It is never a flag: flags show up in ps.
func loadToken(c *config, getenv func(string) string) (batchapi.Secret, tokenSource, error) {
	if c.apiTokenFile != "" {
		tok, err := readTokenFile(c.apiTokenFile, true)
		return tok, tokenSource("api_token_file " + c.apiTokenFile), err
	}
	if dir := getenv("CREDENTIALS_DIRECTORY"); dir != "" {
		p := filepath.Join(dir, credentialName)
		if _, err := os.Stat(p); err == nil {
			// systemd made this file for us alone; its mode is systemd's business.
			tok, err := readTokenFile(p, false)
			return tok, tokenSource("systemd credential " + credentialName), err
		}
	}
	if tok := strings.TrimSpace(getenv("CLOUDFLARE_API_TOKEN")); tok != "" {
		return batchapi.Secret(tok), "environment variable CLOUDFLARE_API_TOKEN", nil
	}
	return "", "", errNoToken
}

// errNoToken says where a token may come from.
var errNoToken = usageError{"no API token: set api_token_file in the config (a file only its owner can read), " +
	"pass it as the systemd credential " + credentialName + " (LoadCredential=), or set CLOUDFLARE_API_TOKEN"}

// insecureTokenError refuses a token file others can read. It is a configuration error
// (exit code 2), and `config check` fails on it rather than warning.
type insecureTokenError struct {
	path string
	perm fs.FileMode
}

func (e *insecureTokenError) Error() string {
	return fmt.Sprintf("api_token_file %s is readable by group or others (mode %04o); the token must be private: "+
		"run \"chmod 600 %s\" (and chown it to the user cfimgsync runs as)", e.path, e.perm, e.path)
}

// readTokenFile reads a token file. With strict set it refuses a file that the group or
// others may read, as ssh does with private keys: such a token has already leaked to them.
func readTokenFile(p string, strict bool) (batchapi.Secret, error) {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", usageError{fmt.Sprintf("api_token_file %s does not exist", p)}
		}
		return "", usageError{fmt.Sprintf("api_token_file: %v", err)}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", usageError{fmt.Sprintf("api_token_file: %v", err)}
	}
	if !fi.Mode().IsRegular() {
		return "", usageError{fmt.Sprintf("api_token_file %s is not a regular file", p)}
	}
	if perm := fi.Mode().Perm(); strict && perm&0o077 != 0 {
		return "", &insecureTokenError{path: p, perm: perm}
	}
	// A token is a few dozen bytes; a bound keeps a wrong path (a log file) from being slurped.
	const maxTokenFile = 4096
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", usageError{fmt.Sprintf("api_token_file %s: %v", p, err)}
	}
	if len(b) > maxTokenFile {
		return "", usageError{fmt.Sprintf("api_token_file %s is over %d bytes: is it the right file?", p, maxTokenFile)}
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" || strings.ContainsAny(tok, "\n\r\t ") {
		return "", usageError{fmt.Sprintf("api_token_file %s must hold just the token on one line", p)}
	}
	return batchapi.Secret(tok), nil
}

// clientConfig builds the API client's configuration. onRetry feeds the metrics.
func (c *config) clientConfig(token batchapi.Secret) batchapi.Config {
	return batchapi.Config{
		AccountID:   c.accountID,
		APIToken:    token,
		APIURL:      c.apiURL,
		BatchURL:    c.batchURL,
		BatchTokens: c.batchTokens,
		TokenRate:   c.rate,
	}
}

// sameClient reports whether two configs build the same API client, so a reload can keep
// the client (its tokens and counters) when only folders changed.
func (c *config) sameClient(o *config) bool {
	return c.accountID == o.accountID && c.apiTokenFile == o.apiTokenFile && c.apiURL == o.apiURL &&
		c.batchURL == o.batchURL && c.batchTokens == o.batchTokens && c.rate == o.rate
}

func (f folderConfig) syncerConfig(c *config) (syncer.Config, error) {
	m, err := watcher.NewMatcher(f.ignore)
	if err != nil {
		return syncer.Config{}, err
	}
	return syncer.Config{
		FolderName:     f.name,
		Root:           f.path,
		Prefix:         f.prefix,
		IDScheme:       f.idScheme,
		VersionedGrace: f.versionedGrace,
		StaticMetadata: f.metadata,
		Ignore:         m,
		Concurrency:    c.concurrency,
		MaxDelete:      f.maxDelete,
		DeleteMode:     f.deleteMode,
		DeleteDelay:    f.deleteDelay,
		RescanInterval: f.rescanInterval,
		AccountID:      c.accountID,
	}, nil
}

// checkReport is what `config check` found beyond hard errors.
type checkReport struct {
	warnings []string
	notes    []string
}

// checkConfig is `config check`'s work after parsing: the things that may legitimately be
// missing on the machine where the config is written (folders, the token, the network)
// are warnings; a token the API refuses is an error.
func checkConfig(ctx context.Context, c *config, getenv func(string) string, probe func(context.Context, batchapi.Config) error) (checkReport, error) {
	var rep checkReport
	for _, f := range c.folders {
		fi, err := os.Stat(f.path)
		switch {
		case err != nil:
			rep.warnings = append(rep.warnings, fmt.Sprintf("folder %s: %v", f.name, err))
		case !fi.IsDir():
			rep.warnings = append(rep.warnings, fmt.Sprintf("folder %s: %s is not a directory", f.name, f.path))
		default:
			rep.notes = append(rep.notes, fmt.Sprintf("folder %s: %s (index key %q)", f.name, f.path, f.name))
		}
	}
	if c.accountID == sampleAccountID {
		rep.warnings = append(rep.warnings, "account_id is the sample's placeholder; put your account ID there")
	}
	tok, src, err := loadToken(c, getenv)
	if err != nil {
		var insecure *insecureTokenError
		if errors.As(err, &insecure) {
			return rep, err
		}
		rep.warnings = append(rep.warnings, err.Error()+"; the daemon will not start without a token")
		return rep, nil
	}
	rep.notes = append(rep.notes, "API token from "+string(src))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch err := probe(pctx, c.clientConfig(tok)); {
	case err == nil:
		rep.notes = append(rep.notes, "the API accepted the token (a batch token was minted)")
	case batchapi.IsAuth(err):
		return rep, fmt.Errorf("the API refused the token: %w", err)
	default:
		rep.warnings = append(rep.warnings, fmt.Sprintf("could not reach the API to check the token: %v", err))
	}
	return rep, nil
}

// sampleAccountID is the placeholder in packaging/config.example.toml.
const sampleAccountID = "00000000000000000000000000000000"

// sortedKeys is for stable output of maps.
func sortedKeys[M ~map[string]V, V any](m M) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// configCmd is `cfimgsync config check [--config FILE]`.
func (c cli) configCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "check" {
		return usageError{"config: the only subcommand is \"check\": cfimgsync config check [--config FILE]"}
	}
	fs := newFlagSet("config check", c.stderr)
	configPath := fs.String("config", defaultConfigPath, "config file")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath, os.Getenv)
	if err != nil {
		return err
	}
	rep, err := checkConfig(ctx, cfg, os.Getenv, probeAPI)
	for _, n := range rep.notes {
		fmt.Fprintln(c.stdout, "ok:      "+n)
	}
	for _, w := range rep.warnings {
		fmt.Fprintln(c.stdout, "warning: "+w)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s: valid (%d folder(s), index %s)\n", cfg.file, len(cfg.folders), cfg.state)
	return nil
}

// probeAPI mints one batch token, without retries: the quickest proof that the endpoint
// answers and the token has Images access.
func probeAPI(ctx context.Context, cc batchapi.Config) error {
	cc.MaxAttempts = 1
	cl, err := batchapi.New(cc)
	if err != nil {
		return err
	}
	_, err = cl.BatchToken(ctx)
	return err
}
