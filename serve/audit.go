package serve

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// AuditRecord is one line of the audit log. It never holds codes or identifiers: the
// subject id is hashed (SHA-256, hex).
type AuditRecord struct {
	Time        time.Time `json:"time"`
	RequestID   string    `json:"request_id"`
	Caller      string    `json:"caller"`
	Method      string    `json:"method"`
	Model       string    `json:"model"`
	Version     string    `json:"version"`
	SubjectHash string    `json:"subject_sha256,omitempty"`
	Score       float64   `json:"score"`
}

// Audit is an append-only JSON-lines audit log. Safe for concurrent use.
type Audit struct {
	mu   sync.Mutex
	f    *os.File
	path string
	key  []byte // when set, subject ids are hashed with HMAC-SHA-256 under it
}

// SetKey makes the log hash subject ids with HMAC-SHA-256 under key instead of plain
// SHA-256, so that short identifiers cannot be recovered by hashing every candidate.
func (a *Audit) SetKey(key []byte) { a.key = append([]byte(nil), key...) }

// hash is the log's subject hash.
func (a *Audit) hash(id string) string {
	if a == nil || len(a.key) == 0 || id == "" {
		return HashSubject(id)
	}
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil))
}

// OpenAudit opens path for appending (created 0600 if absent).
func OpenAudit(path string) (*Audit, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return &Audit{f: f, path: path}, nil
}

// Reopen opens the log's path again and writes there from now on (after logrotate moved the
// file away: serve does it on SIGHUP). Records being written finish in the old file; when the
// path cannot be opened the log keeps writing to the old one and says why.
func (a *Audit) Reopen() error {
	if a == nil {
		return nil
	}
	f, err := os.OpenFile(a.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit log: reopen: %w", err)
	}
	a.mu.Lock()
	old := a.f
	a.f = f
	a.mu.Unlock()
	_ = old.Sync()
	return old.Close()
}

// HashSubject is the audit log's subject hash: SHA-256 of the id, hex; "" for no id.
func HashSubject(id string) string {
	if id == "" {
		return ""
	}
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

// Write appends records, one JSON line each, in one write.
func (a *Audit) Write(recs ...AuditRecord) error {
	if a == nil || len(recs) == 0 {
		return nil
	}
	var buf []byte
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		buf = append(append(buf, b...), '\n')
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err := a.f.Write(buf)
	return err
}

// Close syncs and closes the log.
func (a *Audit) Close() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.f.Sync()
	return a.f.Close()
}
