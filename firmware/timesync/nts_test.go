package timesync

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// An NTS answer as a server builds it: the unique identifier echoed, a
// fresh cookie inside the authenticator. It is accepted and the cookie
// kept; a changed header or another identifier is refused.
func TestNTSAnswerAuthentication(t *testing.T) {
	c2s, _ := newSIV(bytes.Repeat([]byte{1}, 32))
	s2c, _ := newSIV(bytes.Repeat([]byte{2}, 32))
	s := &ntsSession{c2s: c2s, s2c: s2c}
	q := &ntsQuery{s: s, cookie: []byte("cookie-from-the-key-exchange")}
	var req bytes.Buffer
	req.Write(make([]byte, 48))
	if err := q.ProcessQuery(&req); err != nil {
		t.Fatal(err)
	}
	// The server checks the request with the client's key.
	r := req.Bytes()
	auth := bytes.LastIndex(r, []byte{0x04, 0x04})
	body := r[auth+4:]
	nl, cl := int(binary.BigEndian.Uint16(body)), int(binary.BigEndian.Uint16(body[2:]))
	if _, err := c2s.open(r[:auth], body[4:4+nl], body[4+nl:4+nl+cl]); err != nil {
		t.Fatalf("the request's authenticator: %v", err)
	}
	answer := func(uid []byte) []byte {
		a := append(make([]byte, 48), ef(efUniqueID, uid)...)
		nonce := bytes.Repeat([]byte{9}, 16)
		sealed := s2c.seal(a, nonce, ef(efCookie, []byte("fresh-cookie")))
		b := binary.BigEndian.AppendUint16(nil, 16)
		b = binary.BigEndian.AppendUint16(b, uint16(len(sealed)))
		return append(a, ef(efAuth, append(append(b, nonce...), sealed...))...)
	}
	if err := q.ProcessResponse(answer(q.uid[:])); err != nil || len(s.cookies) != 1 || string(s.cookies[0][:12]) != "fresh-cookie" {
		t.Fatalf("a good answer: %v, cookies %q", err, s.cookies)
	}
	bad := answer(q.uid[:])
	bad[40] ^= 1 // the transmit timestamp
	if err := q.ProcessResponse(bad); err == nil {
		t.Error("an answer with a changed header was accepted")
	}
	if err := q.ProcessResponse(answer(make([]byte, 32))); err == nil {
		t.Error("an answer to another query was accepted")
	}
}
