package supervisor

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/secwire/secwire/firmware/config"
	"github.com/secwire/secwire/firmware/mka"
)

// Action is what an update does to one link.
type Action string

const (
	ActionStart   Action = "start"    // a new link
	ActionStop    Action = "stop"     // a link that is gone
	ActionRestart Action = "restart"  // new datapath and CA: the plaintext port bounces
	ActionInPlace Action = "in place" // the running link absorbs the change
)

// Change is one link's part of an update.
type Change struct {
	Link   string
	Action Action
	// Fields are the config paths that differ (links[i].cipher ..., index
	// into the new config); for a restart, only those that need it.
	Fields []string
}

// inPlace reports whether a running link takes a change of the setting
// (its JSON path below the link) without a restart: its SecY, datapath
// and CA stay.
func inPlace(field string) bool {
	return mkaTunable(field) || mkaKeys(field)
}

// mkaTunable: a running KaY takes it without a new MI or SAK.
func mkaTunable(field string) bool {
	switch field {
	case "mka.priority", "mka.eapol_destination", "mka.rekey_interval", "mka.icv_indicator", "mka.transmit_interval":
		return true
	}
	return false
}

// mkaKeys: a running KaY moves to a new key chain as at a rollover, the
// SecY keeping its SAKs meanwhile.
func mkaKeys(field string) bool { return field == "mka.key_chain" || field == "mka.fallback_key" }

// Plan says what changing the running config prev into next does to each
// link, in the order of next's links, then the stopped ones. Links that
// stay as they are do not appear; system settings (hostname, users, SSH,
// management) never touch a link.
func Plan(prev, next *config.Config) []Change {
	var plan []Change
	for i := range next.Links {
		nl := &next.Links[i]
		ol := prev.Link(nl.Name)
		if ol == nil {
			plan = append(plan, Change{Link: nl.Name, Action: ActionStart})
			continue
		}
		var restart, soft []string
		if managementVLAN(prev, *ol) != managementVLAN(next, *nl) {
			// The datapath keeps the in-band management VLAN off the
			// line; it learns a new one only when it starts.
			restart = append(restart, "system.management.vlan")
		}
		for _, f := range linkDiff(ol.Effective(), nl.Effective(), "") {
			p := fmt.Sprintf("links[%d].%s", i, f)
			if inPlace(f) {
				soft = append(soft, p)
			} else {
				restart = append(restart, p)
			}
		}
		switch {
		case len(restart) > 0:
			plan = append(plan, Change{Link: nl.Name, Action: ActionRestart, Fields: restart})
		case len(soft) > 0:
			plan = append(plan, Change{Link: nl.Name, Action: ActionInPlace, Fields: soft})
		}
	}
	for _, ol := range prev.Links {
		if next.Link(ol.Name) == nil {
			plan = append(plan, Change{Link: ol.Name, Action: ActionStop})
		}
	}
	return plan
}

// linkDiff lists the JSON paths of the fields that differ between two
// values of the same struct type, descending into the mka section.
func linkDiff(a, b any, prefix string) []string {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var out []string
	for i := 0; i < va.NumField(); i++ {
		name, _, _ := strings.Cut(va.Type().Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		fa, fb := va.Field(i), vb.Field(i)
		if reflect.DeepEqual(fa.Interface(), fb.Interface()) {
			continue
		}
		if name == "mka" && !fa.IsNil() && !fb.IsNil() {
			out = append(out, linkDiff(fa.Elem().Interface(), fb.Elem().Interface(), prefix+"mka.")...)
			continue
		}
		out = append(out, prefix+name)
	}
	return out
}

// reconfigure applies in-place changes (Plan said they all are) to a
// running link: the KaY takes the new tunables and key chain, the SecY,
// datapath and ports stay as they are.
func (l *link) reconfigure(nl config.Link) error {
	changed := linkDiff(l.cfg.Effective(), nl.Effective(), "")
	var tunables, keys bool
	for _, f := range changed {
		switch {
		case mkaTunable(f):
			tunables = true
		case mkaKeys(f):
			keys = true
		default:
			return fmt.Errorf("cannot change %s in place", f)
		}
	}
	if l.kay == nil || nl.MKA == nil {
		return errors.New("no MKA to change in place")
	}
	m := nl.MKA
	if tunables {
		t := mka.Tunables{Priority: m.KeyServerPriority(), Destination: m.DestinationAddress(), AutoDestination: m.AutoDestination(),
			RekeyInterval: m.Interval(), Hello: m.Hello(), ICVIndicator: m.ICVIndicator}
		if err := l.kay.Reconfigure(t); err != nil {
			return err
		}
	}
	if keys {
		chain, fallback, err := loadChain(m, l.keyDir)
		if err != nil {
			return err
		}
		if err := l.kay.SetKeyChain(chain, fallback); err != nil {
			return err
		}
	}
	l.mu.Lock()
	l.cfg.MKA = m
	l.mu.Unlock()
	return nil
}
