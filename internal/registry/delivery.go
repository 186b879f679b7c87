package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DeliveryState is the delivery state of one channel that every dispatcher
// shares, kept in the KV bucket "delivery" under the installation ID: the
// channel's pace, a pause Slack asked for with a 429, the backoff of a
// channel whose posts fail, and the mark of a channel Slack called gone.
// Dispatchers change it only by compare-and-set, so that any number of them
// act as one; the installer clears it when a channel is enabled or
// reinstalled; the console reads it. The zero value is a channel that
// nothing holds back.
type DeliveryState struct {
	// TAT is the pace's theoretical arrival time (the generic cell rate
	// algorithm): a message may go out at now when TAT - now is at most
	// (burst-1) intervals, and each one pushes TAT an interval further.
	TAT time.Time `json:"tat,omitzero"`
	// PausedUntil is the end of the pause a 429's Retry-After asked for.
	PausedUntil time.Time `json:"paused_until,omitzero"`
	// Failures counts the retryable failures in a row (5xx, network,
	// timeouts) since FailingSince; RetryAt is when the channel is tried
	// again. All are zero once a post succeeds.
	Failures     int       `json:"failures,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
	RetryAt      time.Time `json:"retry_at,omitzero"`
	// LastStatus and LastBody are Slack's last answer that held the
	// channel back (a 429 or a failure), for dead letters and the console.
	LastStatus int    `json:"last_status,omitempty"`
	LastBody   string `json:"last_body,omitempty"`
	// Dead is set once Slack said the channel's webhook will never post
	// again; nil otherwise.
	Dead *DeadMark `json:"dead,omitempty"`
	// DigestSince is when the channel started to get digests; zero while
	// it gets one message per event.
	DigestSince time.Time `json:"digest_since,omitzero"`
	// Next is the dispatcher whose waiting event is the oldest among those
	// refused a turn lately: the channel's next turn is its, so that no
	// dispatcher starves while others keep winning the race for turns.
	Next *TurnTicket `json:"next,omitempty"`
}

// TurnTicket holds a channel's next turn for one dispatcher.
type TurnTicket struct {
	Dispatcher string    `json:"dispatcher"` // the dispatcher's random ID
	Oldest     time.Time `json:"oldest"`     // when its oldest waiting event entered the backlog
	Noted      time.Time `json:"noted"`      // when it last asked; an old ticket is void
}

// DeadMark records that Slack called a channel's webhook gone.
type DeadMark struct {
	// Webhook is WebhookFingerprint of the sealed webhook URL that died:
	// a reinstall brings another webhook, which the mark does not hold
	// back.
	Webhook string    `json:"webhook"`
	Code    string    `json:"code"` // Slack's error code, e.g. channel_is_archived
	Status  int       `json:"status,omitempty"`
	Body    string    `json:"body,omitempty"`
	At      time.Time `json:"at"`
}

// Paused reports whether a 429 holds the channel back at now.
func (s DeliveryState) Paused(now time.Time) bool { return now.Before(s.PausedUntil) }

// Failing reports whether the channel's last posts failed and it has not
// answered since.
func (s DeliveryState) Failing() bool { return s.Failures > 0 }

// WebhookFingerprint names a sealed webhook URL without repeating it: the
// first 64 bits of its SHA-256, in hex. The sealed value is not the secret,
// but the fingerprint keeps the state small and says nothing of it.
func WebhookFingerprint(sealed string) string {
	sum := sha256.Sum256([]byte(sealed))
	return hex.EncodeToString(sum[:8])
}

// Digests says whether a channel that falls behind its pace gets digests.
type Digests string

// The values of Digests; the empty value takes the deployment's default.
const (
	DigestsDefault Digests = ""
	DigestsOn      Digests = "on"
	DigestsOff     Digests = "off"
)

// Valid reports whether d is one of the known values.
func (d Digests) Valid() bool { return d == DigestsDefault || d == DigestsOn || d == DigestsOff }

// DeliverySettings are a channel's own delivery settings, set with
// `channels set`. A zero field takes the deployment's default (CHANNEL_PACE,
// CHANNEL_BURST, DIGESTS, DIGEST_AFTER).
type DeliverySettings struct {
	// Interval is the pace: the time one message takes from the channel's
	// allowance (1s is Slack's one message a second).
	Interval time.Duration `json:"interval,omitempty"`
	// Burst is how many messages may go out at once after a quiet spell.
	Burst       int           `json:"burst,omitempty"`
	Digests     Digests       `json:"digests,omitempty"`
	DigestAfter time.Duration `json:"digest_after,omitempty"`
}

// IsZero reports whether every setting takes its default.
func (s DeliverySettings) IsZero() bool { return s == DeliverySettings{} }

// ParsePace reads a pace such as "1/s", "0.5/s", "30/min" or "2/h" (a
// number of messages per second, minute or hour) and returns the interval
// one message takes.
func ParsePace(s string) (time.Duration, error) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, fmt.Errorf("pace %q is not N/s, N/min or N/h", s)
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) || n <= 0 {
		return 0, fmt.Errorf("pace %q: %q is not a positive number", s, num)
	}
	per := map[string]time.Duration{"s": time.Second, "sec": time.Second, "m": time.Minute, "min": time.Minute, "h": time.Hour}[strings.TrimSpace(unit)]
	if per == 0 {
		return 0, fmt.Errorf("pace %q: the unit must be s, min or h", s)
	}
	interval := time.Duration(float64(per) / n)
	if interval < time.Millisecond || interval > 24*time.Hour {
		return 0, fmt.Errorf("pace %q is out of range (at most 1000/s, at least 1/day)", s)
	}
	return interval, nil
}

// FormatPace writes the pace of interval as ParsePace reads it: "1/s",
// "2/s", "30/min".
func FormatPace(interval time.Duration) string {
	if interval <= 0 {
		return "default"
	}
	for _, u := range []struct {
		per  time.Duration
		name string
	}{{time.Second, "s"}, {time.Minute, "min"}, {time.Hour, "h"}} {
		n := float64(u.per) / float64(interval)
		if n >= 1 || u.name == "h" {
			return strconv.FormatFloat(math.Round(n*1000)/1000, 'f', -1, 64) + "/" + u.name
		}
	}
	return interval.String()
}

// DescribePace shows a channel's own pace as `channels list` prints it and
// the console's audit log keeps it: "1/s burst 3", or "default".
func (s DeliverySettings) DescribePace() string {
	var parts []string
	if s.Interval > 0 {
		parts = append(parts, FormatPace(s.Interval))
	}
	if s.Burst > 0 {
		parts = append(parts, "burst "+strconv.Itoa(s.Burst))
	}
	if len(parts) == 0 {
		return settingDefault
	}
	return strings.Join(parts, " ")
}

// DescribeDigests shows whether and when a channel gets digests, as
// DescribePace shows its pace: "on after 10s", "off", or "default".
func (s DeliverySettings) DescribeDigests() string {
	d := string(s.Digests)
	if d == "" {
		d = settingDefault
	}
	if s.DigestAfter > 0 && s.Digests != DigestsOff {
		d += " after " + s.DigestAfter.String()
	}
	return d
}

// Bounds of a channel's own delivery settings.
const (
	MinInterval    = time.Millisecond
	MaxInterval    = 24 * time.Hour
	MaxBurst       = 100
	MinDigestAfter = time.Second
	MaxDigestAfter = time.Hour
)

// CheckDelivery validates a channel's own delivery settings: each zero, or
// within its bounds (an interval in whole milliseconds), and reports every
// problem at once.
func CheckDelivery(d DeliverySettings) error {
	var problems []string
	switch {
	case d.Interval == 0:
	case d.Interval < MinInterval || d.Interval > MaxInterval:
		problems = append(problems, fmt.Sprintf("pace %s is out of range (at most 1000/s, at least 1/day)", FormatPace(d.Interval)))
	case d.Interval%time.Millisecond != 0:
		problems = append(problems, fmt.Sprintf("pace %s is not a whole number of milliseconds per message", FormatPace(d.Interval)))
	}
	if d.Burst < 0 || d.Burst > MaxBurst {
		problems = append(problems, fmt.Sprintf("burst %d is out of range (1 to %d)", d.Burst, MaxBurst))
	}
	if !d.Digests.Valid() {
		problems = append(problems, fmt.Sprintf("digests %q is neither on nor off", d.Digests))
	}
	if d.DigestAfter != 0 && (d.DigestAfter < MinDigestAfter || d.DigestAfter > MaxDigestAfter || d.DigestAfter%time.Millisecond != 0) {
		problems = append(problems, fmt.Sprintf("digest-after %v is out of range (%v to %v)", d.DigestAfter, MinDigestAfter, MaxDigestAfter))
	}
	if len(problems) > 0 {
		return errors.New("invalid delivery settings: " + strings.Join(problems, "; "))
	}
	return nil
}

// Names of a channel's own delivery settings as an admin gives them: the
// flags of `channels set` (without their dashes) and the fields of the
// console's form.
const (
	SettingPace        = "pace"
	SettingBurst       = "burst"
	SettingDigests     = "digest"
	SettingDigestAfter = "digest-after"
)

// DeliverySettingNames lists the names ParseDelivery takes, in order.
var DeliverySettingNames = []string{SettingPace, SettingBurst, SettingDigests, SettingDigestAfter}

// settingDefault is the word that sends a setting back to the deployment's
// default.
const settingDefault = "default"

// ParseDelivery returns cur with the settings in given changed: each name
// of DeliverySettingNames to a value as an admin typed it, in the console
// or on the command line, so that both read them alike. A pace is N/s,
// N/min or N/h (see ParsePace), burst a count, digest on or off,
// digest-after a duration such as 10s; "default", or nothing (and 0 for
// burst), goes back to the deployment's default. A name not given keeps
// its setting. The error names every problem, each with its setting.
func ParseDelivery(cur DeliverySettings, given map[string]string) (DeliverySettings, error) {
	d := cur
	var problems []string
	for name := range given {
		if !slices.Contains(DeliverySettingNames, name) {
			problems = append(problems, fmt.Sprintf("%q is not a delivery setting", name))
		}
	}
	slices.Sort(problems)
	isDefault := func(v string) bool { return v == "" || strings.EqualFold(v, settingDefault) }
	for _, name := range DeliverySettingNames {
		raw, ok := given[name]
		if !ok {
			continue
		}
		v := strings.TrimSpace(raw)
		switch name {
		case SettingPace:
			d.Interval = 0
			if !isDefault(v) {
				interval, err := ParsePace(v)
				if err != nil {
					problems = append(problems, err.Error()+" (or default)")
				}
				d.Interval = interval
			}
		case SettingBurst:
			d.Burst = 0
			if !isDefault(v) {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					problems = append(problems, fmt.Sprintf("burst %q is not a number of messages (or default)", v))
				}
				d.Burst = n
			}
		case SettingDigests:
			switch lower := Digests(strings.ToLower(v)); {
			case isDefault(v):
				d.Digests = DigestsDefault
			case lower == DigestsOn || lower == DigestsOff:
				d.Digests = lower
			default:
				problems = append(problems, fmt.Sprintf("digest %q: give on, off or default", v))
			}
		case SettingDigestAfter:
			d.DigestAfter = 0
			if !isDefault(v) {
				after, err := time.ParseDuration(v)
				if err != nil || after <= 0 {
					problems = append(problems, fmt.Sprintf("digest-after %q: give a duration such as 10s (or default)", v))
				}
				d.DigestAfter = after
			}
		}
	}
	if len(problems) > 0 {
		return cur, errors.New("invalid delivery settings: " + strings.Join(problems, "; "))
	}
	if err := CheckDelivery(d); err != nil {
		return cur, err
	}
	return d, nil
}
