// Package mgmt holds the management plane, one package per job: cli (the
// Junos/VyOS-style command line, operational and configuration modes),
// console (serial console login and first-boot setup), sshd (the SSH
// server), access (what console and SSH share: password checks, login
// limits, idle timeouts), audit (the audit log), show (status views),
// plane (host name, management address, SSH listener), noc with syslog
// and metrics (what a network operations centre watches), ping and
// monitor (checks from the box), and appliance, which assembles them on
// the booted box. mgmt itself has no code.
package mgmt
