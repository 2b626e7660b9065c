//go:build secwire_never_healthy

package appliance

const testNeverHealthy = true
