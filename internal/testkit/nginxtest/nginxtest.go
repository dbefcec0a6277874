//go:build linux

// Package nginxtest runs a real nginx configured by tokenledger's
// forward-auth snippet, deploy/nginx/tokenledger.conf, in front of a test's
// servers: a request to (*Nginx).URL is checked by the auth endpoint at
// Config.AuthAddr (GET /v1/auth) and, if allowed, proxied to the app at
// Config.AppAddr, exactly as a deployment using the snippet would do it.
//
//	auth := httptest.NewServer(...)  // or a real tokenledger API server
//	app := httptest.NewServer(...)
//	ngx := nginxtest.Start(t, nginxtest.Config{AuthAddr: auth.Listener.Addr().String(), AppAddr: app.Listener.Addr().String()})
//	resp, err := http.Get(ngx.URL() + "/orders")
//
// The nginx binary is looked up in PATH, /usr/sbin and /usr/local/sbin.
// When it is missing, Start installs Debian's nginx package with apt-get
// once per machine (serialised between test processes by a lock file, with
// the package's service kept from starting); when that is impossible it
// fails the test saying what to install. It never skips. The binary must
// have ngx_http_auth_request_module.
//
// The package is for tests only and Linux only: nginx is tied to the test
// process and is killed by the kernel if the test binary dies without
// cleaning up.
package nginxtest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokenledger/tokenledger/internal/debpkg"
	"github.com/tokenledger/tokenledger/stack"
)

// SnippetPath is the nginx configuration Start runs, relative to the
// repository root (the directory holding go.mod).
const SnippetPath = "deploy/nginx/tokenledger.conf"

// Package installed when nginx is missing. In Debian 12 and Ubuntu 24.04,
// "nginx" holds the binary itself, built with the auth_request module;
// nginx-light and nginx-core are small packages on top of it.
const aptPackage = "nginx"

const (
	startTimeout  = 15 * time.Second
	stopTimeout   = 10 * time.Second
	startAttempts = 3
)

// Config says where the servers behind nginx listen.
type Config struct {
	// AuthAddr is host:port of the forward-auth server: tokenledger's API,
	// or a stand-in answering GET /v1/auth.
	AuthAddr string
	// AppAddr is host:port of the protected app.
	AppAddr string
	// Scope is the value of ?scope= that the protected location requires:
	// space-separated scopes, all required. Empty means none, and the check
	// then carries no query at all. Any characters are allowed: Start
	// query-encodes it into the configuration.
	Scope string
}

// Nginx is an nginx process started by Start. It is stopped when the test
// that started it ends.
type Nginx struct {
	url    string
	prefix string
	proc   *stack.Process
}

// URL returns the base URL clients use, http://127.0.0.1:<port>, with no
// trailing slash. Safe for concurrent use.
func (n *Nginx) URL() string { return n.url }

// Start renders SnippetPath for cfg into a fresh prefix directory (logs,
// pid and temporary files all inside it), runs nginx on a free port of
// 127.0.0.1, waits until the port accepts connections, and registers a
// cleanup that stops nginx (SIGQUIT, then SIGKILL after 10 s). If the test
// failed, the cleanup logs nginx's error log. An nginx that exited before
// the cleanup fails the test.
//
// Start fails the test when cfg is incomplete, the snippet cannot be found
// or no longer has its placeholders, nginx is missing and cannot be
// installed, lacks the auth_request module, or does not start.
func Start(tb testing.TB, cfg Config) *Nginx {
	tb.Helper()
	if err := cfg.validate(); err != nil {
		tb.Fatalf("nginxtest: %v", err)
	}
	bin, err := binary()
	if err != nil {
		tb.Fatalf("nginxtest: %v", err)
	}
	snippet, err := readSnippet()
	if err != nil {
		tb.Fatalf("nginxtest: %v", err)
	}
	prefix := tb.TempDir()
	for _, dir := range []string{"logs", "temp"} {
		if err := os.Mkdir(filepath.Join(prefix, dir), 0o700); err != nil {
			tb.Fatalf("nginxtest: %v", err)
		}
	}
	for attempt := 1; ; attempt++ {
		n, err := start(bin, prefix, snippet, cfg)
		if err == nil {
			tb.Cleanup(func() { n.stop(tb) })
			return n
		}
		var taken *portTakenError
		if !errors.As(err, &taken) || attempt == startAttempts {
			tb.Fatalf("nginxtest: %v", err)
		}
	}
}

// validate checks that both addresses are host:port.
func (c Config) validate() error {
	var errs []error
	for _, f := range []struct{ name, addr string }{{"AuthAddr", c.AuthAddr}, {"AppAddr", c.AppAddr}} {
		if _, _, err := net.SplitHostPort(f.addr); err != nil {
			errs = append(errs, fmt.Errorf("cfg.%s %q is not host:port", f.name, f.addr))
		}
	}
	return errors.Join(errs...)
}

// portTakenError says that nginx could not bind its port because another
// process took it after FreePort returned it.
type portTakenError struct{ port int }

func (e *portTakenError) Error() string {
	return fmt.Sprintf("port %d was taken before nginx bound it", e.port)
}

// start runs one nginx on a new free port and waits until it listens.
func start(bin, prefix, snippet string, cfg Config) (*Nginx, error) {
	port, err := stack.FreePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	conf, err := render(snippet, cfg, listen)
	if err != nil {
		return nil, err
	}
	confPath := filepath.Join(prefix, "tokenledger.conf")
	mainPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", confPath, err)
	}
	if err := os.WriteFile(mainPath, []byte(mainConf(prefix, confPath)), 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", mainPath, err)
	}
	errorLog := filepath.Join(prefix, "logs", "error.log")
	output := filepath.Join(prefix, "logs", "output.log")
	out, err := os.OpenFile(output, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", output, err)
	}
	defer out.Close()
	cmd := exec.Command(bin, "-p", prefix+"/", "-c", mainPath, "-e", errorLog, "-g", "daemon off; master_process off;")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	p, err := stack.StartProcess(cmd)
	if err != nil {
		return nil, err
	}
	n := &Nginx{url: "http://" + listen, prefix: prefix, proc: p}
	if err := waitListening(p, listen); err != nil {
		p.Signal(syscall.SIGKILL)
		<-p.Done()
		if portInUse(listen) {
			return nil, &portTakenError{port: port}
		}
		return nil, fmt.Errorf("nginx on %s: %w\n%s", listen, err, n.logs())
	}
	return n, nil
}

// waitListening polls addr until it accepts a connection, the process exits
// or startTimeout passes.
func waitListening(p *stack.Process, addr string) error {
	deadline := time.Now().Add(startTimeout)
	pause := time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-p.Done():
			return fmt.Errorf("exited before listening: %w", exitError(p))
		case <-timer.C:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening after %v: %w", startTimeout, err)
		}
		timer.Reset(pause)
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// portInUse reports whether addr cannot be bound because something listens
// there.
func portInUse(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Is(err, syscall.EADDRINUSE)
	}
	_ = l.Close()
	return false
}

// stop ends nginx gracefully, then forcibly; it fails the test if nginx had
// exited on its own, and logs nginx's output when the test failed.
func (n *Nginx) stop(tb testing.TB) {
	tb.Helper()
	if n.proc.Exited() {
		tb.Errorf("nginxtest: nginx on %s exited during the test: %v\n%s", n.url, exitError(n.proc), n.logs())
		return
	}
	if n.proc.Stop(syscall.SIGQUIT, stopTimeout) {
		tb.Errorf("nginxtest: nginx on %s did not stop within %v of SIGQUIT; killed", n.url, stopTimeout)
	}
	if tb.Failed() {
		tb.Logf("nginxtest: nginx on %s:\n%s", n.url, n.logs())
	}
}

// logs returns nginx's error log and its console output, for failure
// messages.
func (n *Nginx) logs() string {
	var b strings.Builder
	for _, name := range []string{"error.log", "output.log"} {
		data, err := os.ReadFile(filepath.Join(n.prefix, "logs", name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(&b, "--- %s: %v\n", name, err)
			continue
		}
		if len(bytes.TrimSpace(data)) > 0 {
			fmt.Fprintf(&b, "--- %s\n%s", name, data)
		}
	}
	return b.String()
}

// Placeholders of SnippetPath that render substitutes. Each must occur
// exactly once.
const (
	placeholderAuth   = "server 127.0.0.1:8080;"
	placeholderApp    = "server 127.0.0.1:3000;"
	placeholderListen = "listen 80;"
	placeholderScope  = `set $tokenledger_scope "";`
)

// render substitutes cfg and the listen address into the snippet.
func render(snippet string, cfg Config, listen string) (string, error) {
	// QueryEscape leaves only [A-Za-z0-9-_.~%+]: nothing nginx would read
	// as a variable ($) or as the end of the string.
	scope := `set $tokenledger_scope "` + url.QueryEscape(cfg.Scope) + `";`
	replacements := []struct{ old, new string }{
		{placeholderAuth, "server " + cfg.AuthAddr + ";"},
		{placeholderApp, "server " + cfg.AppAddr + ";"},
		{placeholderListen, "listen " + listen + ";"},
		{placeholderScope, scope},
	}
	var errs []error
	for _, r := range replacements {
		// Only the configuration, not the comments, counts.
		if n := strings.Count(stripComments(snippet), r.old); n != 1 {
			errs = append(errs, fmt.Errorf("%s: want the line %q once, found it %d times", SnippetPath, r.old, n))
			continue
		}
		snippet = replaceOutsideComments(snippet, r.old, r.new)
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	return snippet, nil
}

// stripComments returns conf with every # comment removed (nginx has no #
// inside the strings of the snippet).
func stripComments(conf string) string {
	lines := strings.Split(conf, "\n")
	for i, line := range lines {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			lines[i] = line[:j]
		}
	}
	return strings.Join(lines, "\n")
}

// replaceOutsideComments replaces old by new in the code part of each line
// of conf.
func replaceOutsideComments(conf, old, new string) string {
	lines := strings.Split(conf, "\n")
	for i, line := range lines {
		code, comment := line, ""
		if j := strings.IndexByte(line, '#'); j >= 0 {
			code, comment = line[:j], line[j:]
		}
		lines[i] = strings.Replace(code, old, new, 1) + comment
	}
	return strings.Join(lines, "\n")
}

// mainConf is the nginx.conf around the snippet: everything nginx writes
// goes under prefix, so nothing of the machine's nginx is touched.
func mainConf(prefix, snippet string) string {
	p := func(elem ...string) string { return filepath.Join(append([]string{prefix}, elem...)...) }
	return fmt.Sprintf(`pid %s;
error_log %s info;

events {
    worker_connections 512;
}

http {
    access_log %s;
    client_body_temp_path %s;
    proxy_temp_path %s;
    fastcgi_temp_path %s;
    uwsgi_temp_path %s;
    scgi_temp_path %s;

    include %s;
}
`, p("nginx.pid"), p("logs", "error.log"), p("logs", "access.log"),
		p("temp", "client_body"), p("temp", "proxy"), p("temp", "fastcgi"), p("temp", "uwsgi"), p("temp", "scgi"),
		snippet)
}

// readSnippet reads SnippetPath from the repository root, found by walking
// up from the working directory to the directory holding go.mod.
func readSnippet() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find the repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			data, err := os.ReadFile(filepath.Join(dir, SnippetPath))
			if err != nil {
				return "", fmt.Errorf("read the nginx snippet: %w", err)
			}
			return string(data), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find the repository root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// found is the process's nginx binary, looked up (and installed) once.
var found struct {
	once sync.Once
	path string
	err  error
}

// binary returns the path of an nginx with the auth_request module,
// installing nginx first if it is missing.
func binary() (string, error) {
	found.once.Do(func() {
		found.path, found.err = findOrInstall()
		if found.err == nil {
			found.err = checkAuthRequest(found.path)
		}
	})
	return found.path, found.err
}

// lookNginx returns the nginx binary in PATH or a system sbin directory.
func lookNginx() (string, bool) {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p, true
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// findOrInstall returns the nginx binary, installing the package with
// apt-get when there is none.
func findOrInstall() (string, error) {
	if p, ok := lookNginx(); ok {
		return p, nil
	}
	present := func() bool { _, ok := lookNginx(); return ok }
	if err := debpkg.Install(present, aptPackage); err != nil {
		return "", fmt.Errorf("nginx is not in PATH, /usr/sbin or /usr/local/sbin: %w (it must have the auth_request module)", err)
	}
	p, _ := lookNginx()
	return p, nil
}

// lastLine returns the last non-empty line of out.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// checkAuthRequest fails unless bin was built with the auth_request module.
func checkAuthRequest(bin string) error {
	// nginx -V prints its configure arguments on stderr.
	out, err := exec.Command(bin, "-V").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s -V: %w: %s", bin, err, lastLine(out))
	}
	if !bytes.Contains(out, []byte("--with-http_auth_request_module")) {
		return fmt.Errorf("%s lacks ngx_http_auth_request_module (nginx -V does not list --with-http_auth_request_module): install a build that has it, such as Debian's or nginx.org's nginx package", bin)
	}
	return nil
}

// exitError returns how nginx ended, saying so for a clean exit too: it
// should not exit while a test needs it. Call it only once p is done.
func exitError(p *stack.Process) error {
	if err := p.Err(); err != nil {
		return err
	}
	return errors.New("exit status 0")
}
