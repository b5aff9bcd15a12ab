package snapshot

import (
	"fmt"
	"hash/fnv"
	"time"

	"github.com/robfig/cron/v3"
)

// scheduleParser reads the standard five cron fields, an optional
// leading seconds field, and descriptors such as @every 6h or @daily.
func scheduleParser() cron.Parser {
	return cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// Schedule is when scheduled snapshots are taken.
type Schedule struct{ cron.Schedule }

// ParseSchedule reads a cron spec (--etcd-snapshot-schedule-cron).
func ParseSchedule(spec string) (Schedule, error) {
	s, err := scheduleParser().Parse(spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("--etcd-snapshot-schedule-cron %q is not a cron schedule (%w): give five fields such as \"0 */12 * * *\" (every 12 hours), six with seconds first, or @every 6h", spec, err)
	}
	return Schedule{s}, nil
}

// maxJitter bounds how late a node's scheduled snapshots start.
const maxJitter = 30 * time.Second

// NextFor is the next time after now that node takes its scheduled
// snapshot: the schedule's time plus an offset fixed per node (a hash of
// its name), at most a quarter of the interval and maxJitter, so the
// servers of a cluster do not all ask etcd for a snapshot in the same
// second.
func (s Schedule) NextFor(node string, now time.Time) time.Time {
	next := s.Next(now)
	interval := s.Next(next).Sub(next)
	bound := min(maxJitter, interval/4)
	if bound <= 0 {
		return next
	}
	h := fnv.New64a()
	h.Write([]byte(node))
	return next.Add(time.Duration(h.Sum64() % uint64(bound)))
}
