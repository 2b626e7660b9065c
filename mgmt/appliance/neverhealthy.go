//go:build !secwire_never_healthy

package appliance

// testNeverHealthy is set only in the test build secwire_never_healthy
// (go build -tags secwire_never_healthy): a firmware whose management
// plane never starts, so that it never becomes healthy and a trial boot
// of it must roll back (qemu/lifecycle_test.go).
const testNeverHealthy = false
