// Command cfimgsync keeps folders mirrored to Cloudflare Images through the Images batch API.
//
// The package is the composition root: it parses the command line and the config file,
// builds the parts (store, batchapi client, watcher, syncer, emulator), runs them, and maps
// error kinds to exit codes. The work itself lives in the packages; see
// docs/architecture.md. The files are named after the commands they serve:
//
//   - main.go: the command switch, exit codes, sync, ls, emulator, demo
//   - config.go: the TOML config file, its validation, the API token's sources, config check
//   - daemon.go: run and a watching sync: one watcher and syncer per folder, reload on
//     SIGHUP, waiting for the API at start
//   - service.go: the kardianos/service adapter and service install|start|...
//   - status.go: the daemon's live state, its unix socket, and the status command
//   - metrics.go: /metrics (Prometheus text format) and /healthz
//   - manifest.go: the manifest command and manifest_file
//   - progress.go: the progress bar of sync --once
//   - shown.go: file names made safe to print for people
package main
