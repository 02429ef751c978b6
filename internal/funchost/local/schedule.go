package local

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// TimerSchedule reads the schedule of the timer function named function from
// appRoot/<function>/function.json, as the host does, resolving a %Setting%
// reference through setting.
func TimerSchedule(appRoot, function string, setting func(string) string) (string, error) {
	path := filepath.Join(appRoot, function, "function.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	var fn struct {
		Bindings []struct {
			Type     string `json:"type"`
			Schedule string `json:"schedule"`
		} `json:"bindings"`
	}
	if err := json.Unmarshal(b, &fn); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	for _, b := range fn.Bindings {
		if b.Type != "timerTrigger" {
			continue
		}
		name, ok := strings.CutPrefix(b.Schedule, "%")
		if !ok {
			return b.Schedule, nil
		}
		name = strings.TrimSuffix(name, "%")
		if v := setting(name); v != "" {
			return v, nil
		}
		return "", fmt.Errorf("%s: schedule refers to setting %s, which is not set", path, name)
	}
	return "", fmt.Errorf("%s: no timerTrigger binding", path)
}

// Schedule is a parsed NCRONTAB expression.
type Schedule struct{ s cron.Schedule }

// ParseNCRONTAB parses the six-field {second} {minute} {hour} {day} {month}
// {day-of-week} form that Azure Functions timers use.
func ParseNCRONTAB(expr string) (Schedule, error) {
	if n := len(strings.Fields(expr)); n != 6 {
		return Schedule{}, fmt.Errorf("%q has %d fields, want the six of NCRONTAB (second minute hour day month day-of-week)", expr, n)
	}
	p := cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)
	s, err := p.Parse(expr)
	if err != nil {
		return Schedule{}, fmt.Errorf("%q: %w", expr, err)
	}
	return Schedule{s}, nil
}

// Next is the first occurrence after t.
func (s Schedule) Next(t time.Time) time.Time { return s.s.Next(t) }

// Start calls fn at every occurrence, one call at a time: an occurrence that
// comes while fn still runs is skipped. Occurrences are reckoned in UTC, the
// host's zone unless WEBSITE_TIME_ZONE says otherwise (local mode does not
// read it). stop ends the schedule without waiting for a call in progress.
func (s Schedule) Start(fn func()) (stop func()) {
	c := cron.New(cron.WithLocation(time.UTC), cron.WithChain(cron.SkipIfStillRunning(cron.DiscardLogger)))
	c.Schedule(s.s, cron.FuncJob(fn))
	c.Start()
	return func() { c.Stop() }
}
