package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cfimgsync/cfimgsync/batchapi"
)

// noEnv is an environment with nothing set, so tests do not depend on the runner's.
func noEnv(string) string { return "" }

// envOf returns a getenv over m.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

const validAccount = "023e105f4ecef8ad9ca31a8372d0c353"

func TestParseConfigFull(t *testing.T) {
	doc := `
account_id = "` + validAccount + `"
api_token_file = "/etc/cfimgsync/api-token"
api_url = "https://api.example.com/client/v4"
batch_url = "http://127.0.0.1:8787"
batch_tokens = 3
rate = 150.5
concurrency = 8
state = "/var/lib/cfimgsync/state.db"
log_format = "json"
metrics_listen = "127.0.0.1:9999"
manifest_file = "/var/lib/cfimgsync/manifest.csv"

[[folder]]
path = "/srv/images/"
prefix = "site/"
id_scheme = "path"
ignore = ["drafts/", "*.psd"]
delete_mode = "keep"
max_delete = 10
settle = "500ms"
rescan_interval = "10m"
[folder.metadata]
site = "shop"

[[folder]]
path = "/srv/other"
name = "second"
`
	c, err := parseConfig("config.toml", []byte(doc), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.accountID != validAccount || c.apiTokenFile != "/etc/cfimgsync/api-token" ||
		c.apiURL != "https://api.example.com/client/v4" || c.batchURL != "http://127.0.0.1:8787" ||
		c.batchTokens != 3 || c.rate != 150.5 || c.concurrency != 8 || c.state != "/var/lib/cfimgsync/state.db" ||
		c.logFormat != "json" || c.metricsListen != "127.0.0.1:9999" || c.manifestFile != "/var/lib/cfimgsync/manifest.csv" {
		t.Errorf("globals not as written: %+v", c)
	}
	if len(c.folders) != 2 {
		t.Fatalf("%d folders, want 2", len(c.folders))
	}
	f := c.folders[0]
	if f.path != "/srv/images" || f.name != "images" || f.prefix != "site/" || f.idScheme != "path" ||
		len(f.ignore) != 2 || f.deleteMode != "keep" || f.maxDelete != 10 || f.settle != 500*time.Millisecond ||
		f.rescanInterval != 10*time.Minute || f.metadata["site"] != "shop" {
		t.Errorf("folder[0] not as written: %+v", f)
	}
	g := c.folders[1]
	if g.name != "second" || g.settle != defaultSettle || g.rescanInterval != defaultRescan || g.deleteMode != "mirror" || g.idScheme != "path" {
		t.Errorf("folder[1] defaults not applied: %+v", g)
	}
	sc, err := f.syncerConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if sc.FolderName != "images" || sc.Root != "/srv/images" || sc.Concurrency != 8 || sc.AccountID != validAccount || sc.Ignore == nil {
		t.Errorf("syncer config: %+v", sc)
	}
}

func TestParseConfigDefaultsAndEnvironment(t *testing.T) {
	env := envOf(map[string]string{
		"CLOUDFLARE_ACCOUNT_ID": validAccount,
		"CFIMGSYNC_API_URL":     "http://localhost:1/client/v4",
		"CFIMGSYNC_BATCH_URL":   "http://localhost:1",
	})
	c, err := parseConfig("c.toml", []byte("[[folder]]\npath = \"/srv/a b!\"\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.accountID != validAccount || c.apiURL != "http://localhost:1/client/v4" || c.batchURL != "http://localhost:1" {
		t.Errorf("environment not used: %+v", c)
	}
	if c.batchTokens != 1 || c.rate != 200 || c.concurrency != 16 || c.logFormat != "auto" || c.metricsListen != defaultMetricsListen {
		t.Errorf("defaults: %+v", c)
	}
	if c.folders[0].name != "a-b-" {
		t.Errorf("derived name %q, want %q", c.folders[0].name, "a-b-")
	}
	c, err = parseConfig("c.toml", []byte("metrics_listen = \"off\"\n[[folder]]\npath = \"/a\"\n"), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.metricsListen != "" {
		t.Errorf("metrics_listen = off gave %q", c.metricsListen)
	}
}

// TestParseConfigErrors covers every error path: each names the file, the line and the key.
func TestParseConfigErrors(t *testing.T) {
	const acct = `account_id = "` + validAccount + `"` + "\n"
	const folder = "[[folder]]\npath = \"/srv/a\"\n"
	tests := []struct {
		name string
		doc  string
		want []string // substrings of the error
	}{
		{"syntax", "account_id = \n", []string{"c.toml:1: column 14: unexpected character"}},
		{"unknown global key", acct + "colour = 1\n" + folder, []string{"c.toml:2: colour: unknown key"}},
		{"unknown folder key", acct + folder + "bogus = 1\n", []string{"c.toml:4: folder.bogus: unknown key"}},
		{"wrong type", acct + "rate = \"fast\"\n" + folder, []string{"c.toml:2: rate:", "want a number"}},
		{"duration as number", acct + folder + "settle = 5\n", []string{"c.toml:4: folder.settle:", "want a string"}},
		{"ignore not a list", acct + folder + "ignore = \"x\"\n", []string{"c.toml:4: folder.ignore:"}},
		{"account missing", folder, []string{"c.toml: account_id: missing"}},
		{"account not hex", "account_id = \"nope\"\n" + folder, []string{"c.toml:1: account_id: \"nope\" is not an account ID"}},
		{"token file relative", acct + "api_token_file = \"token\"\n" + folder, []string{"c.toml:2: api_token_file:", "absolute"}},
		{"api_url plain http", acct + "api_url = \"http://api.example.com/client/v4\"\n" + folder, []string{"c.toml:2: api_url:", "loopback"}},
		{"batch_url scheme", acct + "batch_url = \"ftp://x\"\n" + folder, []string{"c.toml:2: batch_url:", "https"}},
		{"batch_url not a url", acct + "batch_url = \"::\"\n" + folder, []string{"c.toml:2: batch_url:", "not a URL"}},
		{"batch_tokens", acct + "batch_tokens = 0\n" + folder, []string{"c.toml:2: batch_tokens: 0 is out of range"}},
		{"rate", acct + "rate = 500\n" + folder, []string{"c.toml:2: rate: 500 is out of range"}},
		{"concurrency", acct + "concurrency = 0\n" + folder, []string{"c.toml:2: concurrency: 0 is out of range"}},
		{"state relative", acct + "state = \"state.db\"\n" + folder, []string{"c.toml:2: state:", "absolute"}},
		{"log_format", acct + "log_format = \"xml\"\n" + folder, []string{"c.toml:2: log_format: \"xml\" is not one of auto, text, json"}},
		{"metrics_listen", acct + "metrics_listen = \"nonsense\"\n" + folder, []string{"c.toml:2: metrics_listen:", "host:port"}},
		{"manifest relative", acct + "manifest_file = \"m.json\"\n" + folder, []string{"c.toml:2: manifest_file:", "absolute"}},
		{"no folder", acct, []string{"c.toml: folder: no [[folder]] section"}},
		{"folder without path", acct + "[[folder]]\nprefix = \"x/\"\n", []string{"c.toml:2: folder[0]: path is missing"}},
		{"folder path relative", acct + "[[folder]]\npath = \"srv\"\n", []string{"c.toml:3: folder[0].path:", "absolute"}},
		{"folder name", acct + folder + "name = \"-x y\"\n", []string{"c.toml:4: folder[0].name:", "not a folder name"}},
		{"duplicate derived name", acct + folder + "[[folder]]\npath = \"/other/a\"\n", []string{"c.toml:5: folder[1].path:", "already used by folder[0]"}},
		{"duplicate name", acct + folder + "name = \"x\"\n[[folder]]\npath = \"/b\"\nname = \"x\"\n", []string{"c.toml:7: folder[1].name:", "already used"}},
		{"prefix", acct + folder + "prefix = \"/x\"\n", []string{"c.toml:4: folder[0].prefix:", "must not start with"}},
		{"id_scheme auto with prefix", acct + folder + "id_scheme = \"auto\"\nprefix = \"x/\"\n", []string{"c.toml:4: folder[0].id_scheme:", "cannot apply"}},
		{"versioned_grace without versioned", acct + folder + "versioned_grace = \"1h\"\n", []string{"c.toml:4: folder[0].versioned_grace: applies only to id_scheme = \"versioned\""}},
		{"versioned_grace", acct + folder + "id_scheme = \"versioned\"\nversioned_grace = \"soon\"\n", []string{"c.toml:5: folder[0].versioned_grace: \"soon\" is not a duration"}},
		{"id_scheme unknown", acct + folder + "id_scheme = \"sha\"\n", []string{"c.toml:4: folder[0].id_scheme: \"sha\" is not an ID scheme"}},
		{"ignore pattern", acct + folder + "ignore = [\"!keep.jpg\"]\n", []string{"c.toml:4: folder[0].ignore:", "negation"}},
		{"delete_delay without delay", acct + folder + "delete_delay = \"1h\"\n", []string{"c.toml:4: folder[0].delete_delay: applies only to delete_mode = \"delay\""}},
		{"delete_delay too short", acct + folder + "delete_mode = \"delay\"\ndelete_delay = \"1s\"\n", []string{"c.toml:5: folder[0].delete_delay: 1s is too short"}},
		{"delete_mode unknown", acct + folder + "delete_mode = \"wipe\"\n", []string{"c.toml:4: folder[0].delete_mode: \"wipe\" is not one of"}},
		{"max_delete", acct + folder + "max_delete = 0\n", []string{"c.toml:4: folder[0].max_delete: 0 must be at least 1"}},
		{"settle", acct + folder + "settle = \"zz\"\n", []string{"c.toml:4: folder[0].settle: \"zz\" is not a duration"}},
		{"settle too short", acct + folder + "settle = \"1ns\"\n", []string{"c.toml:4: folder[0].settle: 1ns is too short"}},
		{"rescan_interval", acct + folder + "rescan_interval = \"5\"\n", []string{"c.toml:4: folder[0].rescan_interval: \"5\" is not a duration"}},
		{"metadata too big", acct + folder + "[folder.metadata]\nnote = \"" + strings.Repeat("x", 600) + "\"\n", []string{"c.toml:4: folder[0].metadata:", "over 512"}},
		{"metadata in second folder", acct + folder + "[[folder]]\npath = \"/b\"\nmetadata = { note = \"" + strings.Repeat("x", 600) + "\" }\n",
			[]string{"c.toml:6: folder[1].metadata:"}},
		{"nested", acct + folder + "[[folder]]\npath = \"/srv/a/sub\"\n", []string{"c.toml:5: folder[1].path:", "inside folder[0]"}},
		{"same path", acct + folder + "name = \"one\"\n[[folder]]\npath = \"/srv/a\"\nname = \"two\"\n", []string{"c.toml:6: folder[1].path:", "also folder[0]'s path"}},
		{"several at once", acct + "rate = 0\nconcurrency = 0\n" + folder, []string{"c.toml:2: rate:", "c.toml:3: concurrency:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig("c.toml", []byte(tt.doc), noEnv)
			if err == nil {
				t.Fatalf("no error for:\n%s", tt.doc)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			if code := exitCode(context.Background(), err); code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
		})
	}
}

func TestSampleConfigIsValid(t *testing.T) {
	c, err := loadConfig("packaging/config.example.toml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.accountID != sampleAccountID || len(c.folders) != 1 || c.metricsListen != defaultMetricsListen {
		t.Errorf("sample config resolved to %+v", c)
	}
}

func writeToken(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // the umask may have narrowed it
		t.Fatal(err)
	}
	return p
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	private := writeToken(t, dir, "private", "tok-file\n", 0o600)
	groupReadable := writeToken(t, dir, "group", "tok-group", 0o640)
	worldReadable := writeToken(t, dir, "world", "tok-world", 0o644)
	twoLines := writeToken(t, dir, "two", "a\nb\n", 0o600)
	long := writeToken(t, dir, "long", strings.Repeat("x", 5000), 0o600)
	creds := t.TempDir()
	writeToken(t, creds, credentialName, "tok-cred\n", 0o644)

	tests := []struct {
		name     string
		file     string
		env      map[string]string
		want     batchapi.Secret
		wantErr  string
		insecure bool
	}{
		{"file", private, map[string]string{"CLOUDFLARE_API_TOKEN": "tok-env"}, "tok-file", "", false},
		{"group-readable file refused", groupReadable, nil, "", "chmod 600 " + groupReadable, true},
		{"world-readable file refused", worldReadable, nil, "", "mode 0644", true},
		{"missing file", filepath.Join(dir, "nope"), nil, "", "does not exist", false},
		{"two lines", twoLines, nil, "", "just the token on one line", false},
		{"a file too long to be a token", long, nil, "", "over 4096 bytes", false},
		{"credential before environment", "", map[string]string{"CREDENTIALS_DIRECTORY": creds, "CLOUDFLARE_API_TOKEN": "tok-env"}, "tok-cred", "", false},
		{"credential directory without the file", "", map[string]string{"CREDENTIALS_DIRECTORY": dir, "CLOUDFLARE_API_TOKEN": "tok-env"}, "tok-env", "", false},
		{"environment", "", map[string]string{"CLOUDFLARE_API_TOKEN": " tok-env \n"}, "tok-env", "", false},
		{"none", "", nil, "", "no API token", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &config{apiTokenFile: tt.file}
			tok, src, err := loadToken(c, envOf(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				var insecure *insecureTokenError
				if errors.As(err, &insecure) != tt.insecure {
					t.Errorf("insecure = %v, want %v", !tt.insecure, tt.insecure)
				}
				if code := exitCode(context.Background(), err); code != exitUsage {
					t.Errorf("exit code %d, want %d", code, exitUsage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok != tt.want {
				t.Errorf("token %q, want %q", string(tok), string(tt.want))
			}
			if src == "" || strings.Contains(string(src), string(tok)) {
				t.Errorf("source %q is empty or holds the token", src)
			}
		})
	}
}

func TestConfigCheck(t *testing.T) {
	folder := t.TempDir()
	tokDir := t.TempDir()
	base := `account_id = "` + validAccount + `"` + "\n[[folder]]\npath = \"" + folder + "\"\n"
	tests := []struct {
		name      string
		doc       string
		env       map[string]string
		probe     error
		wantErr   string
		wantWarn  string
		wantProbe bool
	}{
		{"no token is a warning", base, nil, nil, "", "no API token", false},
		{"token accepted", base, map[string]string{"CLOUDFLARE_API_TOKEN": "t"}, nil, "", "", true},
		{"API unreachable is a warning", base, map[string]string{"CLOUDFLARE_API_TOKEN": "t"}, errors.New("dial tcp: connection refused"), "", "could not reach the API", true},
		{"token refused is an error", base, map[string]string{"CLOUDFLARE_API_TOKEN": "t"}, &batchapi.APIError{StatusCode: 403, Op: "batch_token"}, "refused the token", "", true},
		{"readable token file is an error", "api_token_file = \"" + writeToken(t, tokDir, "t", "x", 0o644) + "\"\n" + base, nil, nil, "chmod 600", "", false},
		{"missing folder is a warning", `account_id = "` + validAccount + `"` + "\n[[folder]]\npath = \"/nonexistent/x\"\n", nil, nil, "", "no such file", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig("c.toml", []byte(tt.doc), noEnv)
			if err != nil {
				t.Fatal(err)
			}
			probed := false
			rep, err := checkConfig(context.Background(), c, envOf(tt.env), func(context.Context, batchapi.Config) error {
				probed = true
				return tt.probe
			})
			if probed != tt.wantProbe {
				t.Errorf("probed = %v, want %v", probed, tt.wantProbe)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			joined := strings.Join(rep.warnings, "\n")
			if tt.wantWarn == "" && joined != "" || !strings.Contains(joined, tt.wantWarn) {
				t.Errorf("warnings %q, want %q", joined, tt.wantWarn)
			}
		})
	}
}

func TestConfigCheckCommandOnTheSample(t *testing.T) {
	t.Setenv("CLOUDFLARE_API_TOKEN", "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	code, out, errOut := runCLI(t, "config", "check", "--config", "packaging/config.example.toml")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "valid") || !strings.Contains(out, "placeholder") {
		t.Errorf("output:\n%s", out)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(bad, []byte("rate = 1\nrat = 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runCLI(t, "config", "check", "--config", bad)
	if code != exitUsage || !strings.Contains(errOut, "bad.toml:2: rat: unknown key") {
		t.Errorf("exit %d, stderr:\n%s", code, errOut)
	}
}
