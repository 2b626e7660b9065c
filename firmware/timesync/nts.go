package timesync

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/beevik/ntp"
)

// Network Time Security (RFC 8915): a TLS 1.3 key establishment (NTS-KE,
// TCP port 4460) gives keys and cookies; each NTP query then carries a
// cookie and is authenticated with AEAD_AES_SIV_CMAC_256, and so is the
// answer, which brings a fresh cookie.

const (
	ntsKEPort   = 4460
	ntsALPN     = "ntske/1"
	aeadSIV256  = 15 // AEAD_AES_SIV_CMAC_256
	ntsExporter = "EXPORTER-network-time-security"

	// NTS-KE record types (RFC 8915 4.1).
	recEnd, recNextProto, recError, recWarning, recAEAD, recCookie, recServer, recPort = 0, 1, 2, 3, 4, 5, 6, 7

	// NTP extension field types (RFC 8915 5.7).
	efUniqueID, efCookie, efAuth = 0x0104, 0x0204, 0x0404
)

// ntsSession is what NTS-KE gave for one server.
type ntsSession struct {
	c2s, s2c *siv
	cookies  [][]byte
	host     string // the NTP server to ask (NTS-KE may name another)
	port     int
}

// NTSServer describes an NTS server: its address and how to verify its
// certificate.
type NTSServer struct {
	Address    string
	CAFile     string // PEM; "" uses the system's CAs
	ServerName string // "" is the address
}

func (n NTSServer) tlsConfig() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{ntsALPN}, ServerName: n.ServerName}
	if c.ServerName == "" {
		c.ServerName = n.Address
	}
	if n.CAFile != "" {
		b, err := os.ReadFile(n.CAFile)
		if err != nil {
			return nil, fmt.Errorf("NTS CA file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("NTS CA file %s holds no PEM certificate", n.CAFile)
		}
	}
	return c, nil
}

func record(typ uint16, critical bool, body []byte) []byte {
	if critical {
		typ |= 0x8000
	}
	r := binary.BigEndian.AppendUint16(nil, typ)
	r = binary.BigEndian.AppendUint16(r, uint16(len(body)))
	return append(r, body...)
}

// keyExchange runs NTS-KE with the server.
func (n NTSServer) keyExchange(ctx context.Context) (*ntsSession, error) {
	tc, err := n.tlsConfig()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(n.Address, strconv.Itoa(ntsKEPort))
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: tc}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("NTS key exchange with %s: %w", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	tconn := conn.(*tls.Conn)
	if tconn.ConnectionState().NegotiatedProtocol != ntsALPN {
		return nil, fmt.Errorf("NTS key exchange with %s: the server does not speak %s", addr, ntsALPN)
	}
	var req []byte
	req = append(req, record(recNextProto, true, []byte{0, 0})...) // NTPv4
	req = append(req, record(recAEAD, false, binary.BigEndian.AppendUint16(nil, aeadSIV256))...)
	req = append(req, record(recEnd, true, nil)...)
	if _, err := conn.Write(req); err != nil {
		return nil, fmt.Errorf("NTS key exchange with %s: %w", addr, err)
	}
	s := &ntsSession{host: n.Address, port: 123}
	proto, aead := false, false
	for {
		var h [4]byte
		if _, err := io.ReadFull(conn, h[:]); err != nil {
			return nil, fmt.Errorf("NTS key exchange with %s: %w", addr, err)
		}
		typ, length := binary.BigEndian.Uint16(h[:2])&0x7fff, binary.BigEndian.Uint16(h[2:])
		body := make([]byte, length)
		if _, err := io.ReadFull(conn, body); err != nil {
			return nil, fmt.Errorf("NTS key exchange with %s: %w", addr, err)
		}
		switch typ {
		case recEnd:
			if !proto || !aead || len(s.cookies) == 0 {
				return nil, fmt.Errorf("NTS key exchange with %s: no NTPv4, no AES-SIV-CMAC-256 or no cookie offered", addr)
			}
			cs := tconn.ConnectionState()
			keys := func(dir byte) (*siv, error) {
				k, err := cs.ExportKeyingMaterial(ntsExporter, []byte{0, 0, 0, aeadSIV256, dir}, 32)
				if err != nil {
					return nil, err
				}
				return newSIV(k)
			}
			if s.c2s, err = keys(0); err != nil {
				return nil, err
			}
			if s.s2c, err = keys(1); err != nil {
				return nil, err
			}
			return s, nil
		case recNextProto:
			proto = len(body) >= 2 && binary.BigEndian.Uint16(body) == 0
		case recAEAD:
			aead = len(body) >= 2 && binary.BigEndian.Uint16(body) == aeadSIV256
		case recCookie:
			s.cookies = append(s.cookies, body)
		case recServer:
			s.host = string(body)
		case recPort:
			if len(body) == 2 {
				s.port = int(binary.BigEndian.Uint16(body))
			}
		case recError:
			return nil, fmt.Errorf("NTS key exchange with %s: the server answered error %x", addr, body)
		}
	}
}

// ntsQuery is the NTP extension (github.com/beevik/ntp) that carries
// one NTS-protected query and checks its answer.
type ntsQuery struct {
	s      *ntsSession
	uid    [32]byte
	cookie []byte
}

func ef(typ uint16, body []byte) []byte {
	pad := (4 - len(body)%4) % 4
	out := binary.BigEndian.AppendUint16(nil, typ)
	out = binary.BigEndian.AppendUint16(out, uint16(4+len(body)+pad))
	out = append(out, body...)
	return append(out, make([]byte, pad)...)
}

func (q *ntsQuery) ProcessQuery(buf *bytes.Buffer) error {
	rand.Read(q.uid[:])
	buf.Write(ef(efUniqueID, q.uid[:]))
	buf.Write(ef(efCookie, q.cookie))
	var nonce [16]byte
	rand.Read(nonce[:])
	sealed := q.s.c2s.seal(buf.Bytes(), nonce[:], nil)
	body := binary.BigEndian.AppendUint16(nil, uint16(len(nonce)))
	body = binary.BigEndian.AppendUint16(body, uint16(len(sealed)))
	body = append(body, nonce[:]...)
	body = append(body, sealed...)
	buf.Write(ef(efAuth, body))
	return nil
}

var errNTSNak = errors.New("the server refused the NTS cookie (NTS NAK): a new key exchange follows")

func (q *ntsQuery) ProcessResponse(buf []byte) error {
	if len(buf) >= 48 && buf[1] == 0 && string(buf[12:16]) == "NTSN" {
		return errNTSNak
	}
	uid, authed := false, false
	for off := 48; off+4 <= len(buf); {
		typ, length := binary.BigEndian.Uint16(buf[off:]), int(binary.BigEndian.Uint16(buf[off+2:]))
		if length < 4 || off+length > len(buf) {
			return errors.New("NTS: malformed extension field in the answer")
		}
		body := buf[off+4 : off+length]
		switch typ {
		case efUniqueID:
			uid = bytes.Equal(body, q.uid[:])
		case efAuth:
			if !uid {
				return errors.New("NTS: the answer does not echo our unique identifier")
			}
			if len(body) < 4 {
				return errors.New("NTS: short authenticator")
			}
			nl, cl := int(binary.BigEndian.Uint16(body)), int(binary.BigEndian.Uint16(body[2:]))
			np := nl + (4-nl%4)%4
			if 4+np+cl > len(body) {
				return errors.New("NTS: short authenticator")
			}
			plain, err := q.s.s2c.open(buf[:off], body[4:4+nl], body[4+np:4+np+cl])
			if err != nil {
				return fmt.Errorf("NTS: the answer fails authentication: %w", err)
			}
			authed = true
			for p := 0; p+4 <= len(plain); {
				t, l := binary.BigEndian.Uint16(plain[p:]), int(binary.BigEndian.Uint16(plain[p+2:]))
				if l < 4 || p+l > len(plain) {
					break
				}
				if t == efCookie {
					q.s.cookies = append(q.s.cookies, append([]byte(nil), plain[p+4:p+l]...))
				}
				p += l
			}
		}
		off += length
	}
	if !authed {
		return errors.New("NTS: the answer is not authenticated")
	}
	return nil
}

// queryNTS asks an NTS server, running NTS-KE first when there is no
// session or no cookie left; slot keeps the server's session.
func queryNTS(ctx context.Context, srv NTSServer, slot **ntsSession, now func() time.Time) (Sample, error) {
	s := *slot
	if s == nil || len(s.cookies) == 0 {
		var err error
		if s, err = srv.keyExchange(ctx); err != nil {
			*slot = nil
			return Sample{}, err
		}
		*slot = s
	}
	q := &ntsQuery{s: s, cookie: s.cookies[0]}
	s.cookies = s.cookies[1:]
	timeout := 3 * time.Second
	r, err := ntp.QueryWithOptions(s.host, ntp.QueryOptions{Timeout: timeout, Port: s.port, GetSystemTime: now, Extensions: []ntp.Extension{q}})
	if err != nil {
		if errors.Is(err, errNTSNak) {
			*slot = nil
		}
		return Sample{}, fmt.Errorf("no NTS answer from %s: %w", s.host, plain(err))
	}
	if err := r.Validate(); err != nil {
		return Sample{}, fmt.Errorf("%s answered but cannot be used: %w", s.host, err)
	}
	return Sample{Offset: r.ClockOffset, RTT: r.RTT, Stratum: int(r.Stratum), Distance: r.RootDistance, NTS: true}, nil
}
