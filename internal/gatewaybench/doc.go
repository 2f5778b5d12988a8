// Package gatewaybench measures what polling costs, in one run: the
// loopback floor (a bare Modbus TCP request loop) against our poller per
// CPU core, and the whole gateway (and its poller alone) against Telegraf
// v1.37.2 polling the same simulated devices every second, for CPU, memory
// and samples per CPU-second. The command cmd/gatewaybench is its command
// line; docs/BENCHMARKS.md explains the method and holds the figures.
//
// Run does the parts Config.Parts selects:
//
//   - floor: against one simulator child, the floor and our poller
//     (devices/modbus) run in this process, back to back, flat out on
//     FloorConns connections with UnitsPerConn units each, FloorRuns times,
//     alternating which goes first; each counts the polls and requests it
//     completed in its window and the CPU time this process and the
//     simulator used;
//   - gateway, poller-only, telegraf: for each of Devices devices at 1 Hz,
//     Runs times, alternating which goes first, a tool polls simulator
//     children into a broker child: our gateway (poll, spool, forward),
//     our poller alone (polling into nothing) or Telegraf (inputs.modbus,
//     outputs.kafka, configured from the same register map). After a
//     warm-up the window's samples are read back from the broker, per
//     device, and each process's CPU time and memory are read from /proc.
//
// Our gateway is the cmd/gateway binary (Config.Gateway: built with the go
// command from the module the working directory is in, unless a path or
// GatewaySelf is given), run with a generated YAML configuration, its
// device health read from its /devices. Every other child but Telegraf is
// the running binary re-executed with ChildEnv naming its role (ServeChild
// plays it; whichever binary calls Run must dispatch on ChildEnv first), so
// the CPU time and memory of each process are its own. The devices are of
// class press (press.yaml, embedded).
//
// A run fails when a child does not start or dies, no sample reaches the
// broker, or a sample lacks the class's fields; a failed run is listed in
// the report and the rest go on. The report (Markdown) gives medians per
// part and device count, the ratios poller/floor and ours/telegraf, the
// other load on the machine during each run (runs that shared the machine
// with more than QuietCores cores of other load are left out of the
// medians, unless none was that quiet), and the machine.
//
// Linux only: it reads /proc.
package gatewaybench
