// A Modbus server built on modbus-serial 8.0.25, for the devices/modbus
// compatibility tests (peers_test.go).
//
//   node modbus-serial-server.js tcp <port>
//   node modbus-serial-server.js rtu <serial device> <baud rate> <parity: none|even|odd>
//
// Every unit id is served with the registers the Go tests expect (see
// regValue in helpers_test.go): holding register a of unit u holds
// u*1000+a, input register a holds u*1000+a+500 (a < 200), coil and
// discrete input a are set when a%3 == 0 (a < 64). Other addresses answer
// exception 2 (illegal data address). When ready it prints one line,
// "listening <port>" (tcp) or "open" (rtu), and serves until it is killed.
"use strict";
const ModbusRTU = require("modbus-serial");

const registers = 200;
const bits = 64;

function illegalAddress() {
    return { modbusErrorCode: 0x02, msg: "illegal data address" };
}

function register(addr, unit, offset) {
    if (addr >= registers) {
        throw illegalAddress();
    }
    return (unit * 1000 + addr + offset) & 0xffff;
}

function bit(addr) {
    if (addr >= bits) {
        throw illegalAddress();
    }
    return addr % 3 === 0;
}

const vector = {
    getHoldingRegister: (addr, unit) => register(addr, unit, 0),
    getInputRegister: (addr, unit) => register(addr, unit, 500),
    getCoil: (addr) => bit(addr),
    getDiscreteInput: (addr) => bit(addr),
};

const [mode, arg1, baud, parity] = process.argv.slice(2);
let server;
if (mode === "tcp") {
    // ServerTCP takes port 0 for its default, 502: the caller picks a
    // free port.
    server = new ModbusRTU.ServerTCP(vector, { host: "127.0.0.1", port: Number(arg1), unitID: 255 });
    server.on("initialized", () => {
        process.stdout.write(`listening ${server._server.address().port}\n`);
    });
} else if (mode === "rtu") {
    server = new ModbusRTU.ServerSerial(vector, {
        path: arg1,
        baudRate: Number(baud),
        parity: parity,
        dataBits: 8,
        stopBits: 1,
        unitID: 255,
        interval: 5,
    });
    server.on("initialized", () => process.stdout.write("open\n"));
} else {
    process.stderr.write("usage: modbus-serial-server.js tcp <port> | rtu <path> <baud> <parity>\n");
    process.exit(2);
}
server.on("error", (err) => process.stderr.write(`server error: ${err && err.message}\n`));
server.on("socketError", (err) => process.stderr.write(`socket error: ${err && err.message}\n`));
server.on("serverError", (err) => {
    process.stderr.write(`server error: ${err && err.message}\n`);
    process.exit(1);
});
