// A Modbus TCP server built on jsmodbus 5.0.0, for the devices/modbus
// compatibility tests (peers_test.go).
//
//   node jsmodbus-server.js
//
// It serves 200 holding registers, register a holding 1000+a (unit 1 of
// regValue in helpers_test.go), whatever the unit id. jsmodbus answers a
// read that runs past the end of its buffer with the registers it has: a
// short reply with a consistent byte count, which a client must reject.
// When ready it prints "listening <port>" and serves until it is killed.
"use strict";
const net = require("net");
const Modbus = require("jsmodbus");

const registers = 200;
const holding = Buffer.alloc(registers * 2);
for (let a = 0; a < registers; a++) {
    holding.writeUInt16BE((1000 + a) & 0xffff, a * 2);
}

const netServer = new net.Server();
new Modbus.server.TCP(netServer, { holding: holding });
netServer.listen(0, "127.0.0.1", () => {
    process.stdout.write(`listening ${netServer.address().port}\n`);
});
