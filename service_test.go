package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// renderUnit expands the SystemdScript template the way kardianos/service's engine does for
// the three actions unitTemplate uses (the engine itself is unexported), and fails on any
// other action, so a template change that this rendering would not cover is caught.
func renderUnit(t *testing.T, tmpl, path string, args []string, user string) string {
	t.Helper()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = " \"" + strings.ReplaceAll(a, `"`, `\"`) + "\""
	}
	out := strings.NewReplacer(
		"{{Path | cmdEscape}}", strings.ReplaceAll(path, " ", `\x20`),
		"{{range Arguments}} {{. | cmd}}{{end}}", strings.Join(quoted, ""),
		"{{UserName}}", user,
	).Replace(tmpl)
	if strings.Contains(out, "{{") {
		t.Fatalf("template has actions renderUnit does not know:\n%s", out)
	}
	return out
}

func TestServiceInstallWritesThePackagedUnit(t *testing.T) {
	tmpl, err := unitTemplate()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := serviceConfig("/etc/cfimgsync/config.toml", "cfimgsync", nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Option["SystemdScript"] != tmpl || sc.Option["Restart"] != "on-failure" || sc.Option["ReloadSignal"] != "HUP" {
		t.Errorf("service options: %v", sc.Option)
	}
	unit := renderUnit(t, tmpl, "/usr/bin/cfimgsync", sc.Arguments, sc.UserName)

	// The hardening the issue asks for, line by line.
	for _, line := range []string{
		"Wants=network-online.target",
		"After=network-online.target",
		`ExecStart=/usr/bin/cfimgsync "run" "--config" "/etc/cfimgsync/config.toml"`,
		"ExecReload=/bin/kill -HUP $MAINPID",
		"User=cfimgsync",
		"Group=cfimgsync",
		"StateDirectory=cfimgsync",
		"ProtectSystem=strict",
		"ReadWritePaths=/var/lib/cfimgsync",
		"NoNewPrivileges=yes",
		"PrivateTmp=yes",
		"Restart=on-failure",
		"Environment=CFIMGSYNC_STATE=/var/lib/cfimgsync/state.db",
		"WantedBy=multi-user.target",
	} {
		if !strings.Contains("\n"+unit, "\n"+line+"\n") {
			t.Errorf("the installed unit lacks %q", line)
		}
	}
	// Everything else is the packaged unit, byte for byte.
	rendered, packaged := strings.Split(unit, "\n"), strings.Split(packagedUnit, "\n")
	if len(rendered) != len(packaged) {
		t.Fatalf("%d lines installed, %d packaged", len(rendered), len(packaged))
	}
	for i := range packaged {
		key, _, _ := strings.Cut(packaged[i], "=")
		if key == "ExecStart" || key == "User" || key == "Group" {
			continue
		}
		if rendered[i] != packaged[i] {
			t.Errorf("line %d: installed %q, packaged %q", i+1, rendered[i], packaged[i])
		}
	}

	// A path with a space is escaped as systemd wants it.
	if u := renderUnit(t, tmpl, "/opt/my apps/cfimgsync", []string{"run"}, "x"); !strings.Contains(u, `ExecStart=/opt/my\x20apps/cfimgsync "run"`+"\n") {
		t.Errorf("escaped ExecStart wrong:\n%s", u)
	}

	// systemd's own opinion, offline, when it is at hand. ExecStart must name an existing
	// file, so it points at this test binary.
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Log("systemd-analyze not found; the unit is not verified by systemd here (CI does)")
		return
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "cfimgsync.service")
	if err := os.WriteFile(p, []byte(renderUnit(t, tmpl, self, sc.Arguments, sc.UserName)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", p).CombinedOutput()
	if err != nil || strings.Contains(string(out), "cfimgsync.service") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestProgramStartStop(t *testing.T) {
	t.Run("stop waits for run", func(t *testing.T) {
		finished := make(chan struct{})
		p := newProgram(func(ctx context.Context) error {
			<-ctx.Done()
			close(finished)
			return ctx.Err()
		}, time.Minute)
		if err := p.Start(nil); err != nil {
			t.Fatal(err)
		}
		if err := p.Stop(nil); err != nil {
			t.Fatal(err)
		}
		select {
		case <-finished:
		default:
			t.Fatal("Stop returned before run finished")
		}
		if !errors.Is(p.err, context.Canceled) {
			t.Errorf("run's error %v", p.err)
		}
	})
	t.Run("stop gives up after the grace period", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		p := newProgram(func(context.Context) error { <-release; return nil }, 10*time.Millisecond)
		if err := p.Start(nil); err != nil {
			t.Fatal(err)
		}
		if err := p.Stop(nil); err == nil || !strings.Contains(err.Error(), "did not stop") {
			t.Errorf("Stop = %v, want a deadline error", err)
		}
	})
	t.Run("runWait returns when run fails by itself", func(t *testing.T) {
		fatal := errors.New("fatal")
		p := newProgram(func(context.Context) error { return fatal }, time.Minute)
		if err := p.Start(nil); err != nil {
			t.Fatal(err)
		}
		p.runWait(context.Background())() // must return without a signal
		if !errors.Is(p.err, fatal) {
			t.Errorf("err %v", p.err)
		}
	})
}

func TestRunAsServiceReturnsTheDaemonsError(t *testing.T) {
	fatal := errors.New("index failure")
	err := runAsService(context.Background(), func(context.Context) error { return fatal }, "/x.toml")
	if !errors.Is(err, fatal) {
		t.Errorf("err %v, want %v", err, fatal)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- runAsService(ctx, func(ctx context.Context) error { close(started); <-ctx.Done(); return ctx.Err() }, "/x.toml")
	}()
	<-started
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("a requested stop returned %v", err)
	}
}

func TestServiceCommandUsage(t *testing.T) {
	for _, args := range [][]string{{"service"}, {"service", "frobnicate"}, {"service", "install", "--config", "/nonexistent/cfimgsync.toml"}} {
		if code, _, errOut := runCLI(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, code, exitUsage, errOut)
		}
	}
}
