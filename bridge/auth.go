package bridge

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Signature headers. The signature is HMAC-SHA256 with a shared secret over
// the timestamp, a dot and the raw body:
//
//	X-Shopstream-Timestamp: 1764237600
//	X-Shopstream-Signature: sha256=<hex(HMAC-SHA256(secret, "1764237600" + "." + body))>
const (
	HeaderTimestamp = "X-Shopstream-Timestamp"
	HeaderSignature = "X-Shopstream-Signature"
)

// Sign returns the X-Shopstream-Signature value for body sent at ts.
func Sign(secret []byte, ts time.Time, body []byte) (timestamp, signature string) {
	timestamp = strconv.FormatInt(ts.Unix(), 10)
	return timestamp, "sha256=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(timestamp))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a request's signature against every secret (so that a
// secret can be rotated: accept old and new, switch the senders, drop the
// old), in constant time, and that the timestamp is within window of now in
// either direction (replay protection). It returns "" when the request is
// authentic, else a short reason for the metrics: "missing", "malformed",
// "stale" or "mismatch".
func Verify(secrets [][]byte, timestamp, signature string, body []byte, now time.Time, window time.Duration) string {
	if timestamp == "" || signature == "" {
		return "missing"
	}
	secs, err := strconv.ParseInt(timestamp, 10, 64)
	hexSig, ok := strings.CutPrefix(signature, "sha256=")
	if err != nil || !ok {
		return "malformed"
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return "malformed"
	}
	if d := now.Sub(time.Unix(secs, 0)); d > window || d < -window {
		return "stale"
	}
	match := 0
	for _, s := range secrets {
		// Every secret is tried, so the time taken does not say which matched.
		if hmac.Equal(got, mac(s, timestamp, body)) {
			match = 1
		}
	}
	if match == 0 {
		return "mismatch"
	}
	return ""
}
