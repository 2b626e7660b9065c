package config

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"

	"github.com/secwire/secwire/firmware/store"
	"github.com/secwire/secwire/firmware/tpmkey"
)

// Where the box has a TPM 2.0 the device key is not kept in clear: it is
// sealed by the TPM (firmware/tpmkey) into SealKeyTPMName beside the
// config, and seal.key does not exist. Only that TPM opens it.

// SealKeyTPMName is the TPM-sealed device key's file name.
const SealKeyTPMName = SealKeyName + ".tpm"

// ErrForeignKey is a TPM-sealed device key that this box's TPM cannot
// open: the config partition comes from another box, or the TPM was
// cleared since.
var ErrForeignKey = errors.New("the device key (" + SealKeyTPMName + ") was sealed by another box's TPM, or before this TPM was cleared: " +
	"the CAKs sealed on this config partition cannot be opened here; enter them again (commit), or zeroize")

// SealKeyInTPM makes sure the device key beside a config at keyPath
// (seal.key) is sealed by tpm: a new key is made sealed, a key found in
// clear is sealed and its clear copy wiped. It says what it did.
func SealKeyInTPM(keyPath string, tpm *tpmkey.TPM) (string, error) {
	tpmPath := keyPath + ".tpm"
	if _, err := os.Stat(tpmPath); err == nil {
		return "device key sealed by the TPM", nil
	}
	k, err := os.ReadFile(keyPath)
	what := "device key in clear found: sealed by the TPM, the clear copy wiped"
	if errors.Is(err, os.ErrNotExist) {
		k, what = make([]byte, 32), "new device key, sealed by the TPM"
		if _, err := rand.Read(k); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", fmt.Errorf("device key: %w", err)
	}
	defer clear(k)
	if len(k) != 32 {
		return "", fmt.Errorf("%w: %s has %d bytes, want 32", ErrDamagedKey, keyPath, len(k))
	}
	blob, err := tpm.Seal(k)
	if err != nil {
		return "", err
	}
	if err := store.WriteAtomic(tpmPath, blob, 0o600); err != nil {
		return "", fmt.Errorf("device key: %w", err)
	}
	if err := store.WipeFile(keyPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("wipe the clear device key: %w", err)
	}
	return what, nil
}

// unsealTPMKey opens a TPM-sealed device key.
func unsealTPMKey(tpmPath string, blob []byte) ([]byte, error) {
	t, err := tpmkey.Open()
	if err != nil {
		return nil, fmt.Errorf("device key %s is sealed by a TPM, but %v", tpmPath, err)
	}
	defer t.Close()
	k, err := t.Unseal(blob)
	if errors.Is(err, tpmkey.ErrForeign) {
		return nil, fmt.Errorf("%w (%v)", ErrForeignKey, err)
	}
	return k, err
}
