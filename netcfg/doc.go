// Package netcfg makes the sensor's emulated addresses local to the host, through netlink.
//
// A Plan is the desired state: AnyIP routes (a `local` route in table local, so that
// every address of a prefix is bindable, reachable and answered to ARP without being
// assigned), /32 (/128) aliases on a named interface for short address lists, interface
// MACs, and network sysctls. PlanFor builds the plan from the sensor's host prefixes.
//
// A Configurator works on one network namespace. Diff lists what Apply would do (and
// why what is already in place needs nothing; `icsnare check` prints it, and it needs no
// privilege). Apply lists the current state first, changes only what is missing and
// remembers what it changed; applying the same plan again changes nothing, and a failed
// Apply undoes its own steps (a MAC gets its original back). Teardown removes exactly
// what this Configurator added and restores the MACs and sysctls it set.
//
//	plan, err := netcfg.PlanFor(hostPrefixes, netcfg.PlanOptions{})
//	cfg, err := netcfg.New(netcfg.Options{Logger: log})
//	changes, err := cfg.Apply(ctx, plan) // before binding the listeners
//	...
//	err = cfg.Teardown(ctx)               // at shutdown; needs CAP_NET_ADMIN still
//
// Changes need CAP_NET_ADMIN; without it the errors are PrivilegeErrors
// (errors.Is(err, ErrPrivilege)) that name the capability.
package netcfg
