package jamf

import "time"

// Received is one webhook that ingest accepted for an installation: the raw
// Jamf JSON body and what ingest learned while accepting it. The bus carries
// it from ingest to the dispatchers; Attempt is set by the consumer.
type Received struct {
	InstallationID string
	Event          string // webhook.webhookEvent, as sent
	ReceivedAt     time.Time
	Body           []byte // the Jamf JSON, as received (XML is converted first)
	Attempt        int    // delivery attempt, 1 for the first; 0 when publishing
	// Queued is when the event entered the backlog (JAMF_EVENTS stored it,
	// or stored it again on a replay); set when consuming. Its delivery
	// deadline counts from here.
	Queued time.Time
}

// DeadLetter is a Received that could not be delivered, with why.
type DeadLetter struct {
	Received
	Reason     string // short machine-friendly reason: attempts_spent, channel_dead, bad_message, ...
	Attempts   int
	LastStatus int    // last HTTP status from Slack, 0 when none
	LastBody   string // last answer body from Slack, truncated; never a secret
	At         time.Time
	Seq        uint64 // sequence in the dead-letter stream; set when listed
}
