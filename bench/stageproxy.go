package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a started server process whose stderr (and stdout) go to a log
// file once the startup line has been seen.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace, then SIGKILL.
func (c *child) stop(grace time.Duration) {
	if c == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// tail returns the last n lines of the child's log.
func (c *child) tail(n int) string {
	return tailFile(c.log, n)
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// crashLine returns the first "panic:" or "fatal error:" line of a log.
func crashLine(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "exited"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "fatal error:") {
			return strings.TrimSpace(l)
		}
	}
	return "exited without a panic line"
}

// moduleRoot returns the directory holding go.mod, from `go env GOMOD`.
func moduleRoot(gobin string) (string, error) {
	out, err := exec.Command(gobin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the stageproxy module (run from /work/main or via make bench)")
	}
	return filepath.Dir(gomod), nil
}

func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if gr := os.Getenv("GOROOT"); gr != "" {
		return filepath.Join(gr, "bin", "go")
	}
	return "go"
}

// buildStageproxy runs `go build -o tmp/stageproxy ./cmd/stageproxy`.
func buildStageproxy(gobin, root, tmp string) (string, error) {
	bin := filepath.Join(tmp, "stageproxy")
	cmd := exec.Command(gobin, "build", "-o", bin, "./cmd/stageproxy")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/stageproxy: %v\n%s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// stageproxyEnv is the explicit environment stageproxy runs with: no
// *_PROXY variables, nothing of the caller's.
func stageproxyEnv(tmp string) []string {
	return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + tmp, "TMPDIR=" + tmp, "LANG=C"}
}

// caInit runs `bin ca init --out dir`.
func caInit(bin, tmp, dir string) error {
	cmd := exec.Command(bin, "ca", "init", "--out", dir)
	cmd.Dir = tmp
	cmd.Env = stageproxyEnv(tmp)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s ca init --out %s: %v: %s", filepath.Base(bin), dir, err, lastLine(string(out)))
	}
	return nil
}

var listeningRE = regexp.MustCompile(`listening on (\[[0-9a-fA-F:.]+\]:[0-9]+|[0-9.]+:[0-9]+)`)

// startStageproxy starts `bin serve --listen 127.0.0.1:0 --config
// tmp/empty.conf [extra...]` with an explicit environment, reads its stderr
// until the "listening on ADDR" log line, then keeps draining it into
// tmp/stageproxy.log.
func startStageproxy(bin, tmp string, extra ...string) (*child, string, error) {
	conf := filepath.Join(tmp, "empty.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		return nil, "", err
	}
	logPath := filepath.Join(tmp, "stageproxy.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--config", conf}, extra...)...)
	cmd.Dir = tmp
	cmd.Env = stageproxyEnv(tmp)
	cmd.Stdout = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		logf.Close()
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, "", err
	}
	c := &child{name: colStageproxy, cmd: cmd, log: logPath, done: make(chan struct{})}
	found := make(chan string, 1)
	go func() {
		br := bufio.NewReaderSize(stderr, 64<<10)
		sent := false
		for !sent {
			line, err := br.ReadString('\n')
			_, _ = logf.WriteString(line)
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				found <- m[1]
				sent = true
			}
			if err != nil {
				break
			}
		}
		_, _ = io.Copy(logf, br)
		_ = cmd.Wait()
		logf.Close()
		close(c.done)
	}()
	select {
	case addr := <-found:
		return c, addr, nil
	case <-c.done:
		return nil, "", fmt.Errorf("stageproxy exited before listening (%v):\n%s", cmd.ProcessState, c.tail(15))
	case <-time.After(20 * time.Second):
		c.stop(2 * time.Second)
		return nil, "", fmt.Errorf("no \"listening on\" line from stageproxy within 20s:\n%s", c.tail(15))
	}
}

// procStatus returns VmHWM and VmRSS of pid in MiB.
func procStatus(pid int) (hwm, rss float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, err := strconv.ParseFloat(fields[1], 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "VmHWM:":
			hwm = kb / 1024
		case "VmRSS:":
			rss = kb / 1024
		}
	}
	return hwm, rss, sc.Err()
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// procCPU returns user+system CPU seconds used by pid (0 for ourselves).
func procCPU(pid int) float64 {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clockTicks
}

// cpuUsage holds, per watched process, CPU seconds (a snapshot) or cores
// used (after sub).
type cpuUsage []float64

// readCPU snapshots the CPU seconds of each pid (0 is this process, -1 none)
// and, as the last element, the busy CPU seconds of the whole machine.
func readCPU(pids []int) cpuUsage {
	u := make(cpuUsage, len(pids)+1)
	for i, p := range pids {
		if p >= 0 {
			u[i] = procCPU(p)
		}
	}
	u[len(pids)] = machineBusy()
	return u
}

// machineBusy returns the busy (not idle, not iowait) CPU seconds of all
// CPUs from the first line of /proc/stat.
func machineBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, v := range f[1:] {
		if i >= 8 { // guest time is already counted in user
			break
		}
		x, _ := strconv.ParseFloat(v, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += x
		}
	}
	return busy / clockTicks
}

// sub turns two snapshots into average cores used over elapsed.
func (u cpuUsage) sub(before cpuUsage, elapsed time.Duration) cpuUsage {
	out := make(cpuUsage, len(u))
	for i := range u {
		if i < len(before) {
			out[i] = (u[i] - before[i]) / elapsed.Seconds()
		}
	}
	return out
}
