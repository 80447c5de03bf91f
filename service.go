package main

// service.go: `cfimgsync run` (what the service manager executes) and `cfimgsync service
// install|uninstall|start|stop|restart|status`, through kardianos/service.

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kardianos/service"
)

// packagedUnit is the unit the .deb and .rpm install. `service install` writes the same
// unit, with only ExecStart and the user filled in, so the two cannot drift apart.
//
//go:embed packaging/cfimgsync.service
var packagedUnit string

// serviceName is the unit's name: cfimgsync.service.
const serviceName = "cfimgsync"

// stopGrace bounds how long Stop waits for the daemon after asking it to stop: the
// syncer's in-flight calls get 30 s, and systemd's TimeoutStopSec (60 s) must not be hit
// first.
const stopGrace = 50 * time.Second

// unitTemplate turns the packaged unit into a kardianos SystemdScript template. The
// template engine there knows only {{Key}}, pipes, if and range, so the substitutions are
// plain text edits of the lines that differ per install.
func unitTemplate() (string, error) {
	if strings.Contains(packagedUnit, "{{") {
		return "", errors.New("packaging/cfimgsync.service must not contain \"{{\"")
	}
	var out []string
	seen := map[string]bool{}
	for line := range strings.Lines(packagedUnit) {
		line = strings.TrimRight(line, "\n")
		key, _, _ := strings.Cut(line, "=")
		switch key {
		case "ExecStart":
			line = "ExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}"
		case "User":
			line = "User={{UserName}}"
		case "Group":
			line = "Group={{UserName}}"
		}
		seen[key] = true
		out = append(out, line)
	}
	for _, k := range []string{"ExecStart", "User", "Group"} {
		if !seen[k] {
			return "", fmt.Errorf("packaging/cfimgsync.service has no %s= line", k)
		}
	}
	return strings.Join(out, "\n") + "\n", nil
}

// serviceConfig describes the service to kardianos; runWait, when not nil, is how the
// foreground Run waits (see program).
func serviceConfig(configPath, userName string, runWait func()) (*service.Config, error) {
	tmpl, err := unitTemplate()
	if err != nil {
		return nil, err
	}
	opts := service.KeyValue{
		"SystemdScript": tmpl,
		"Restart":       "on-failure",
		"ReloadSignal":  "HUP",
	}
	if runWait != nil {
		opts["RunWait"] = runWait
	}
	return &service.Config{
		Name:        serviceName,
		DisplayName: "cfimgsync",
		Description: "cfimgsync: mirror folders to Cloudflare Images",
		Arguments:   []string{"run", "--config", configPath},
		UserName:    userName,
		Option:      opts,
	}, nil
}

// program adapts the daemon to kardianos/service.Interface: Start launches the daemon and
// returns at once, Stop cancels it and waits, with a deadline, for the in-flight calls to
// be recorded. It never exits the process itself; Run's caller maps the outcome to an exit
// code.
type program struct {
	run    func(context.Context) error
	grace  time.Duration
	cancel context.CancelFunc
	done   chan struct{}
	err    error // run's result, readable once done is closed
}

func newProgram(run func(context.Context) error, grace time.Duration) *program {
	return &program{run: run, grace: grace, done: make(chan struct{})}
}

func (p *program) Start(service.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() {
		defer close(p.done)
		p.err = p.run(ctx)
	}()
	return nil
}

func (p *program) Stop(service.Service) error {
	if p.cancel == nil {
		return nil
	}
	p.cancel()
	t := time.NewTimer(p.grace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
		return fmt.Errorf("the daemon did not stop within %s; calls in flight may be settled at the next start", p.grace)
	}
}

// runWait returns when the process is asked to stop (ctx, from SIGTERM/SIGINT) or when the
// daemon ended by itself: a fatal error must end the process, not leave it idle, so that
// Restart=on-failure restarts it.
func (p *program) runWait(ctx context.Context) func() {
	return func() {
		select {
		case <-ctx.Done():
		case <-p.done:
		}
	}
}

// runCmd is `cfimgsync run --config FILE`, the service's entry point.
func (c cli) runCmd(ctx context.Context, args []string) error {
	fs := newFlagSet("run", c.stderr)
	configPath := fs.String("config", defaultConfigPath, "config file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	load := func() (*config, error) { return loadConfig(*configPath, os.Getenv) }
	cfg, err := load()
	if err != nil {
		return err
	}
	logger := newLogger(cfg.logFormat, c.stderr)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	d := &daemon{load: load, logger: logger, reload: hup}
	return runAsService(ctx, d.run, *configPath)
}

// runAsService runs fn under kardianos/service (which, on Windows, speaks to the service
// control manager) and returns fn's error; a requested stop returns nil.
func runAsService(ctx context.Context, fn func(context.Context) error, configPath string) error {
	p := newProgram(fn, stopGrace)
	sc, err := serviceConfig(configPath, "", p.runWait(ctx))
	if err != nil {
		return err
	}
	svc, err := service.New(p, sc)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	if err := svc.Run(); err != nil {
		return err
	}
	<-p.done
	if p.err != nil && !errors.Is(p.err, context.Canceled) {
		return p.err
	}
	return nil
}

// serviceCmd is `cfimgsync service install|uninstall|start|stop|restart|status`.
func (c cli) serviceCmd(args []string) error {
	if len(args) == 0 {
		return usageError{"service: want one of install, uninstall, start, stop, restart, status"}
	}
	action := args[0]
	fs := newFlagSet("service "+action, c.stderr)
	configPath := fs.String("config", defaultConfigPath, "config file the service runs with")
	userName := fs.String("user", serviceName, "user the service runs as (install)")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	abs, err := filepath.Abs(*configPath)
	if err != nil {
		return usageError{err.Error()}
	}
	sc, err := serviceConfig(abs, *userName, nil)
	if err != nil {
		return err
	}
	svc, err := service.New(newProgram(nil, stopGrace), sc)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	switch action {
	case "install":
		if _, err := loadConfig(abs, os.Getenv); err != nil {
			return err
		}
		if _, err := user.Lookup(*userName); err != nil {
			return usageError{fmt.Sprintf("service install: user %q does not exist; create it first:\n"+
				"  useradd --system --user-group --home-dir /var/lib/cfimgsync --shell /usr/sbin/nologin %s\n"+
				"(the .deb and .rpm packages do this), or pass --user", *userName, *userName)}
		}
		if err := svc.Install(); err != nil {
			return fmt.Errorf("service install: %w", err)
		}
		fmt.Fprintf(c.stdout, "installed %s (%s), running as %s with %s\nstart it with: cfimgsync service start\n",
			serviceName, svc.Platform(), *userName, abs)
	case "uninstall", "start", "stop", "restart":
		if err := service.Control(svc, action); err != nil {
			return fmt.Errorf("service %s: %w", action, err)
		}
		fmt.Fprintf(c.stdout, "%s: %s done\n", serviceName, action)
	case "status":
		st, err := svc.Status()
		if err != nil {
			return fmt.Errorf("service status: %w", err)
		}
		names := map[service.Status]string{service.StatusRunning: "running", service.StatusStopped: "stopped"}
		s, ok := names[st]
		if !ok {
			s = "unknown"
		}
		fmt.Fprintf(c.stdout, "%s: %s (details: cfimgsync status)\n", serviceName, s)
	default:
		return usageError{fmt.Sprintf("service: unknown action %q (install, uninstall, start, stop, restart, status)", action)}
	}
	return nil
}

// newLogger builds the process logger: text for a person at a terminal, JSON for the
// journal and log collectors, or as log_format says.
func newLogger(format string, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if format == "text" || format == "auto" && isTerminal(w) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
