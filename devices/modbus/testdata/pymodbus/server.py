"""A Modbus server built on pymodbus 3.16.1, for the devices/modbus
compatibility tests (peers_test.go).

  python3 server.py <framer> tcp
  python3 server.py <framer> serial <device> <baud rate> <parity: N|E|O> <data bits> <stop bits>

framer is socket (Modbus TCP; tcp only), rtu or ascii. Over tcp it listens
on a free port of 127.0.0.1 and prints "listening <port>"; on a serial
device it prints "open" once the line is open. It serves until it is
killed.

Units 1, 2, 3, 17 and 247 are served with the registers the Go tests
expect (see regValue in helpers_test.go): holding register a of unit u
holds u*1000+a, input register a holds u*1000+a+500 (a < 200), coil and
discrete input a are set when a%3 == 0 (a < 64). Other addresses answer
exception 2 (illegal data address).
"""

import asyncio
import sys

from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import SimData, SimDevice
from pymodbus.simulator.simutils import DataType

UNITS = (1, 2, 3, 17, 247)
REGISTERS = 200
BITS = 64
FRAMERS = {"socket": FramerType.SOCKET, "rtu": FramerType.RTU, "ascii": FramerType.ASCII}


def device(unit):
    """The unit's four tables, each its own block (coils addressed by bit)."""
    bits = [a % 3 == 0 for a in range(BITS)]
    return SimDevice(
        id=unit,
        simdata=(
            [SimData(0, values=list(bits), datatype=DataType.BITS)],
            [SimData(0, values=list(bits), datatype=DataType.BITS)],
            [SimData(0, values=[(unit * 1000 + a) & 0xFFFF for a in range(REGISTERS)], datatype=DataType.REGISTERS)],
            [SimData(0, values=[(unit * 1000 + a + 500) & 0xFFFF for a in range(REGISTERS)], datatype=DataType.REGISTERS)],
        ),
    )


def usage():
    sys.stderr.write(__doc__)
    sys.exit(2)


async def main(argv):
    if len(argv) < 2 or argv[0] not in FRAMERS:
        usage()
    framer, devices = FRAMERS[argv[0]], [device(u) for u in UNITS]
    if argv[1] == "tcp" and len(argv) == 2:
        server = ModbusTcpServer(devices, framer=framer, address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        print("listening", server.transport.sockets[0].getsockname()[1], flush=True)
    elif argv[1] == "serial" and len(argv) == 7 and framer != FramerType.SOCKET:
        path, baud, parity, data_bits, stop_bits = argv[2], int(argv[3]), argv[4], int(argv[5]), int(argv[6])
        server = ModbusSerialServer(
            devices, framer=framer, port=path, baudrate=baud, parity=parity, bytesize=data_bits, stopbits=stop_bits
        )
        await server.serve_forever(background=True)
        print("open", flush=True)
    else:
        usage()
    await server.serving


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
