// Package mka is MACsec Key Agreement (IEEE 802.1X-2020 clause 9) with
// pre-shared CAKs: the KaY (Key Agreement Entity) of one link.
//
// The package is split the way the standard splits the protocol:
//
//   - options.go: what configures a KaY: its options, the protocol timers
//     (802.1X-2020 Table 9-3) and the key chain entry.
//   - entity.go: the KaY itself: the goroutine that owns the protocol
//     (Run), and the outbox of MKPDUs it sends outside its lock.
//   - participant.go: one MKA participant per CAK (9.4): its member
//     identifier and message numbers, its peers and their liveness (9.4.2),
//     and the handling of received MKPDUs.
//   - keyserver.go: key server election (9.5), SAK generation and
//     distribution (9.8), SSCI assignment and the XPN salt (802.1AE-2018
//     10.7.8, 10.7.13).
//   - cp.go: the Controlled Port's SAK life cycle (802.1X-2020 12.4, the
//     CP state machine): installing a SAK for receive, moving transmit to
//     it, retiring the old one, with named states.
//   - send.go: building the MKPDUs a participant transmits.
//   - diagnose.go: why a CA is not secured, from what was received.
//   - mkpdu.go, encode.go, keys.go: the MKPDU codec (decode, encode) and
//     the cryptography (KDF, ICV, key wrap), tested on IEEE 802.1X Annex G
//     and RFC vectors.
//
// Only the principal participant (a key chain CAK whose CA has a live
// peer, newest first; the fallback CAK only when no key chain CA has one)
// touches the SecY, so a key chain rolls over like a rekey.
package mka
