package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackalope-app/jackalope/internal/plainjs"
)

// Limits that keep a run bounded whatever the flags say.
const (
	maxConcurrency = 4096
	maxDuration    = time.Hour
	maxRequests    = 100_000_000
	maxBodyFile    = 16 << 20
	defaultRunTime = 10 * time.Second
)

// config is a parsed command line.
type config struct {
	target      *url.URL
	tokens      []string
	concurrency int
	duration    time.Duration // 0: until n requests
	requests    int64         // 0: until duration
	rate        float64       // requests per second over all connections; 0: as fast as answered
	event       string
	body        []byte
	bodySource  string
	contentType string
	timeout     time.Duration
	strict      bool
	serveBare   string
	publish     string // with serveBare: the NATS server to publish to, or "embedded"
	deliver     string // with publish: the webhook the plain pipeline delivers to
	group       int    // with publish: publishers of a group commit (plainjs.GroupHandler); 0: none
	keep        bool   // with publish: keep what the stream holds instead of emptying it
	tlsCert     string
	tlsKey      string
}

// tokenList is a repeatable -token flag.
type tokenList []string

func (l *tokenList) String() string { return fmt.Sprintf("%d tokens", len(*l)) }

func (l *tokenList) Set(v string) error {
	v = tokenOf(v)
	if v == "" {
		return errors.New("empty token")
	}
	*l = append(*l, v)
	return nil
}

// tokenOf takes a token, or the Jamf URL that carries one (what
// "channels add" prints), and returns the token.
func tokenOf(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "/jamf/"); i >= 0 {
		s = s[i+len("/jamf/"):]
	}
	return strings.TrimRight(s, "/")
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfg        config
		rawURL     string
		tokens     tokenList
		tokensFile string
		bodyFile   string
	)
	fs.StringVar(&rawURL, "url", "http://127.0.0.1:5000", "base URL of ingest or the all-in-one; requests go to URL/jamf/{token}")
	fs.Var(&tokens, "token", "a Jamf URL token, or the whole Jamf URL (repeatable)")
	fs.StringVar(&tokensFile, "tokens", "", "file of Jamf URL tokens or whole Jamf URLs, one a line")
	fs.IntVar(&cfg.concurrency, "c", 64, fmt.Sprintf("concurrent connections, each with one request in flight (at most %d)", maxConcurrency))
	fs.DurationVar(&cfg.duration, "d", 0, fmt.Sprintf("run this long (%s when -n is not set either; at most %s)", defaultRunTime, maxDuration))
	fs.Float64Var(&cfg.rate, "rate", 0, "send at most this many requests per second in all, on a fixed schedule (0: as fast as the target answers)")
	fs.Int64Var(&cfg.requests, "n", 0, fmt.Sprintf("stop after this many requests (at most %d)", maxRequests))
	fs.StringVar(&cfg.event, "event", "ComputerCheckIn", "webhook.webhookEvent of the built-in ComputerCheckIn body")
	fs.StringVar(&bodyFile, "body", "", "send this file's body instead of the built-in one (its udid, serialNumber and eventTimestamp are varied)")
	fs.StringVar(&cfg.contentType, "content-type", "", "Content-Type of the requests (default application/json; text/xml for a -body ending in .xml)")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Second, "timeout of each request")
	fs.BoolVar(&cfg.strict, "strict", false, "exit 1 when any request failed: a transport error or an answer other than 2xx")
	fs.StringVar(&cfg.serveBare, "serve-bare", "", "instead of sending, serve a bare handler answering 204 on this address (e.g. 127.0.0.1:5001) until interrupted")
	fs.StringVar(&cfg.publish, "publish", "", "with -serve-bare: serve plain JetStream, publishing each body to stream "+plainjs.Stream+" on this NATS server (\"embedded\": one started here) and answering 204 once it is stored")
	fs.IntVar(&cfg.group, "group", 0, "with -publish: store the requests in flight together, several webhooks per stream message, with this many publishers (a design measured, not Jackalope's)")
	fs.StringVar(&cfg.deliver, "deliver", "", "with -publish: also consume, render and post each event to this webhook URL (-c at once), and ack it; GET /delivered tells how many were posted")
	fs.BoolVar(&cfg.keep, "keep", false, "with -publish: keep the events the stream holds (a backlog for -deliver to drain) instead of emptying it at start")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "with -serve-bare: serve HTTPS with this certificate (PEM), e.g. to stand in for Slack's webhooks")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "with -serve-bare: the certificate's private key (PEM)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, err
		}
		return config{}, errUsage
	}
	if fs.NArg() > 0 {
		return config{}, usageError(stderr, []string{"unexpected arguments: " + strings.Join(fs.Args(), " ")})
	}
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		return config{}, usageError(stderr, []string{"-tls-cert and -tls-key go together"})
	}
	if (cfg.deliver != "" || cfg.group != 0 || cfg.keep) && cfg.publish == "" {
		return config{}, usageError(stderr, []string{"-deliver, -group and -keep go with -publish"})
	}
	if cfg.group < 0 || cfg.group > 64 {
		return config{}, usageError(stderr, []string{"-group must be from 0 to 64"})
	}
	if cfg.group > 0 && cfg.deliver != "" {
		return config{}, usageError(stderr, []string{"-group cannot go with -deliver: nothing delivers grouped messages"})
	}
	if cfg.serveBare != "" {
		return cfg, nil
	}
	if cfg.tlsCert != "" {
		return config{}, usageError(stderr, []string{"-tls-cert and -tls-key only apply to -serve-bare"})
	}
	if cfg.publish != "" {
		return config{}, usageError(stderr, []string{"-publish, -deliver, -group and -keep only apply to -serve-bare"})
	}

	var problems []string
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Sprintf("-url %q is not an http(s) URL", rawURL))
	}
	cfg.target = u
	if tokensFile != "" {
		fromFile, err := readTokens(tokensFile)
		if err != nil {
			problems = append(problems, "-tokens: "+err.Error())
		}
		tokens = append(tokens, fromFile...)
	}
	for _, t := range tokens {
		if strings.ContainsAny(t, "/?#% ") {
			problems = append(problems, "a token holds a character that is not allowed in a URL path segment")
			break
		}
	}
	cfg.tokens = tokens
	if len(cfg.tokens) == 0 {
		problems = append(problems, "no token: give -token T (repeatable) or -tokens FILE")
	}
	if cfg.concurrency < 1 || cfg.concurrency > maxConcurrency {
		problems = append(problems, fmt.Sprintf("-c must be from 1 to %d", maxConcurrency))
	}
	if cfg.rate < 0 {
		problems = append(problems, "-rate must not be negative")
	}
	if cfg.duration < 0 || cfg.duration > maxDuration {
		problems = append(problems, fmt.Sprintf("-d must be from 0 to %s", maxDuration))
	}
	if cfg.requests < 0 || cfg.requests > maxRequests {
		problems = append(problems, fmt.Sprintf("-n must be from 0 to %d", maxRequests))
	}
	if cfg.duration == 0 && cfg.requests == 0 {
		cfg.duration = defaultRunTime
	}
	if cfg.timeout <= 0 {
		problems = append(problems, "-timeout must be positive")
	}
	if bodyFile != "" {
		b, err := readBodyFile(bodyFile)
		if err != nil {
			problems = append(problems, "-body: "+err.Error())
		}
		cfg.body, cfg.bodySource = b, bodyFile
		if cfg.contentType == "" && strings.EqualFold(filepath.Ext(bodyFile), ".xml") {
			cfg.contentType = "text/xml"
		}
	} else {
		cfg.body, cfg.bodySource = checkInBody(cfg.event), "built-in ComputerCheckIn, event "+cfg.event
	}
	if cfg.contentType == "" {
		cfg.contentType = "application/json"
	}
	if len(problems) > 0 {
		return config{}, usageError(stderr, problems)
	}
	return cfg, nil
}

// usageError writes the problems found on the command line and returns
// errUsage.
func usageError(stderr io.Writer, problems []string) error {
	var b []byte
	for _, p := range problems {
		b = append(b, "loadgen: "+p+"\n"...)
	}
	if _, err := stderr.Write(b); err != nil {
		return fmt.Errorf("%w (%w)", errUsage, err)
	}
	return errUsage
}

// readTokens reads one token or Jamf URL a line, skipping blank lines and
// # comments.
func readTokens(path string) ([]string, error) {
	b, err := readFile(path, maxBodyFile)
	if err != nil {
		return nil, err
	}
	var tokens []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tokens = append(tokens, tokenOf(line))
	}
	return tokens, nil
}

func readBodyFile(path string) ([]byte, error) {
	b, err := readFile(path, maxBodyFile)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return b, nil
}

// readFile reads path, refusing a file over limit bytes.
func readFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes", path, limit)
	}
	return b, nil
}
