package funchost

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Addr is where the host connects to the handler: 127.0.0.1 (IPv4, whatever
// localhost resolves to) on the port it chose and passed in
// FUNCTIONS_CUSTOMHANDLER_PORT.
func Addr(getenv func(string) string) (string, error) {
	port := getenv("FUNCTIONS_CUSTOMHANDLER_PORT")
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("setting FUNCTIONS_CUSTOMHANDLER_PORT: must be a port number set by the Functions host, got %q", port)
	}
	return net.JoinHostPort("127.0.0.1", port), nil
}

// NewLogger writes JSON lines: errors to stderr, which the host keeps at
// Error level and is where it looks for the reason of a failure, and
// everything else to stdout.
func NewLogger(level zerolog.Level, stdout, stderr io.Writer) zerolog.Logger {
	return zerolog.New(levelSplit{out: stdout, err: stderr}).Level(level).With().Timestamp().Logger()
}

type levelSplit struct{ out, err io.Writer }

func (w levelSplit) Write(p []byte) (int, error) { return w.out.Write(p) }

func (w levelSplit) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if l >= zerolog.ErrorLevel {
		return w.err.Write(p)
	}
	return w.out.Write(p)
}

// AppRoot is the folder the host runs the app from, holding host.json and
// one folder per function: FUNCTIONS_APP_ROOT_PATH, which the host sets, or
// else the working directory.
func AppRoot(getenv func(string) string) string {
	if root := getenv("FUNCTIONS_APP_ROOT_PATH"); root != "" {
		return root
	}
	return "."
}

// consumptionTimeout is the host's functionTimeout when host.json sets none.
const consumptionTimeout = 5 * time.Minute

// FunctionTimeout reads functionTimeout ("hh:mm:ss", "d.hh:mm:ss" or "-1")
// from appRoot's host.json: how long the host lets an invocation run before it
// kills the process. 0 means unbounded, and an absent file or key means the
// Consumption default of 5 minutes.
func FunctionTimeout(appRoot string) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(appRoot, "host.json"))
	if errors.Is(err, os.ErrNotExist) {
		return consumptionTimeout, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read host.json: %w", err)
	}
	timeout, err := functionTimeout(b)
	if err != nil {
		return 0, fmt.Errorf("host.json functionTimeout: %w", err)
	}
	return timeout, nil
}

func functionTimeout(hostJSON []byte) (time.Duration, error) {
	var h struct {
		FunctionTimeout *string `json:"functionTimeout"`
	}
	if err := json.Unmarshal(hostJSON, &h); err != nil {
		return 0, fmt.Errorf("not valid JSON: %w", err)
	}
	if h.FunctionTimeout == nil {
		return consumptionTimeout, nil
	}
	return parseTimeSpan(*h.FunctionTimeout)
}

var timeSpanRE = regexp.MustCompile(`^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$`)

// parseTimeSpan parses a .NET TimeSpan as host.json writes it; "-1" is 0
// (unbounded).
func parseTimeSpan(s string) (time.Duration, error) {
	if strings.TrimSpace(s) == "-1" {
		return 0, nil
	}
	m := timeSpanRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("%q is not a TimeSpan like 00:10:00", s)
	}
	days := 0
	if m[1] != "" {
		days, _ = strconv.Atoi(m[1])
	}
	h, _ := strconv.Atoi(m[2])
	mi, _ := strconv.Atoi(m[3])
	sec, _ := strconv.Atoi(m[4])
	if mi > 59 || sec > 59 {
		return 0, fmt.Errorf("%q is not a TimeSpan like 00:10:00", s)
	}
	// .NET's fraction of a second: up to seven digits, in ticks of 100 ns.
	ticks, _ := strconv.Atoi((m[5] + "0000000")[:7])
	return time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour +
		time.Duration(mi)*time.Minute + time.Duration(sec)*time.Second + time.Duration(ticks)*100, nil
}
