// Package mgmt will hold the management plane: the CLI in operational and
// configuration modes, the serial console login and the SSH server. Until it
// lands, firmware/boot offers a clearly marked placeholder prompt.
package mgmt
