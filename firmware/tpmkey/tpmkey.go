// Package tpmkey seals the device key (the key that seals CAKs at rest,
// firmware/config) with a TPM 2.0, so that the config partition alone,
// copied to another box, opens nothing.
//
// The key is a TPM sealed-data object under the storage root key the
// TPM derives from its owner seed (the TCG's ECC P-256 SRK template): its
// public and private parts are stored on the config partition, but the
// private part is encrypted under the SRK and loads only into the TPM
// that made it. Zeroize clears the TPM (TPM2_Clear with lockout
// authorization), which changes the owner seed: no copy of the sealed
// object taken before opens again, on this box or any other.
package tpmkey

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// Device is the kernel's TPM resource manager.
const Device = "/dev/tpmrm0"

// ErrForeign means a sealed key that this TPM cannot load.
var ErrForeign = errors.New("sealed by another TPM")

// TPM is an open TPM.
type TPM struct {
	t transport.TPMCloser
}

// Present reports whether the box has a TPM 2.0.
func Present() bool {
	_, err := os.Stat(Device)
	return err == nil
}

// Open opens the box's TPM.
func Open() (*TPM, error) {
	t, err := linuxtpm.Open(Device)
	if err != nil {
		return nil, fmt.Errorf("TPM %s: %w", Device, err)
	}
	return &TPM{t: t}, nil
}

// OpenStream uses a TPM reached over a stream (swtpm's socket in tests).
func OpenStream(rw io.ReadWriteCloser) *TPM {
	return &TPM{t: transport.FromReadWriteCloser(rw)}
}

// Close closes the TPM.
func (t *TPM) Close() error { return t.t.Close() }

// blob is the stored sealed object.
type blob struct {
	Format  string `json:"format"`
	Public  []byte `json:"public"`
	Private []byte `json:"private"`
}

const blobFormat = "secwire TPM 2.0 sealed device key, ECC P-256 SRK parent"

// srk creates the storage root key (deterministic for the owner seed).
func (t *TPM) srk() (tpm2.NamedHandle, func(), error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(t.t)
	if err != nil {
		return tpm2.NamedHandle{}, nil, fmt.Errorf("TPM storage root key: %w", err)
	}
	flush := func() { tpm2.FlushContext{FlushHandle: rsp.ObjectHandle}.Execute(t.t) }
	return tpm2.NamedHandle{Handle: rsp.ObjectHandle, Name: rsp.Name}, flush, nil
}

// Seal seals secret (at most 128 bytes) and returns what to store.
func (t *TPM) Seal(secret []byte) ([]byte, error) {
	parent, flush, err := t.srk()
	if err != nil {
		return nil, err
	}
	defer flush()
	rsp, err := tpm2.Create{
		ParentHandle: parent,
		InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
			Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: secret}),
		}},
		InPublic: tpm2.New2B(tpm2.TPMTPublic{
			Type:    tpm2.TPMAlgKeyedHash,
			NameAlg: tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{
				FixedTPM: true, FixedParent: true, UserWithAuth: true, NoDA: true,
			},
		}),
	}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("TPM seal: %w", err)
	}
	return json.Marshal(blob{Format: blobFormat, Public: tpm2.Marshal(rsp.OutPublic), Private: tpm2.Marshal(rsp.OutPrivate)})
}

// Unseal opens what Seal returned. A sealed object from another TPM (or
// from before a TPM clear) is ErrForeign.
func (t *TPM) Unseal(stored []byte) ([]byte, error) {
	var b blob
	if err := json.Unmarshal(stored, &b); err != nil || b.Format != blobFormat {
		return nil, errors.New("not a sealed device key (damaged?)")
	}
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](b.Public)
	if err != nil {
		return nil, fmt.Errorf("sealed device key damaged: %w", err)
	}
	priv, err := tpm2.Unmarshal[tpm2.TPM2BPrivate](b.Private)
	if err != nil {
		return nil, fmt.Errorf("sealed device key damaged: %w", err)
	}
	parent, flush, err := t.srk()
	if err != nil {
		return nil, err
	}
	defer flush()
	lr, err := tpm2.Load{ParentHandle: parent, InPrivate: *priv, InPublic: *pub}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("%w (the TPM refuses to load it: %v)", ErrForeign, err)
	}
	defer tpm2.FlushContext{FlushHandle: lr.ObjectHandle}.Execute(t.t)
	ur, err := tpm2.Unseal{ItemHandle: tpm2.AuthHandle{Handle: lr.ObjectHandle, Name: lr.Name, Auth: tpm2.PasswordAuth(nil)}}.Execute(t.t)
	if err != nil {
		return nil, fmt.Errorf("TPM unseal: %w", err)
	}
	return ur.OutData.Buffer, nil
}

// Clear clears the TPM's owner hierarchy (TPM2_Clear, lockout
// authorization): every object sealed under it is gone for good.
func (t *TPM) Clear() error {
	_, err := tpm2.Clear{AuthHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHLockout, Auth: tpm2.PasswordAuth(nil)}}.Execute(t.t)
	if err != nil {
		return fmt.Errorf("TPM clear (lockout authorization): %w", err)
	}
	return nil
}
