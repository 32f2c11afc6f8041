#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A scripted UPnP IGD:1 for answers miniupnpd never gives.

Answers SSDP searches on the LAN address given, serves a minimal root
description (WANCommonInterfaceConfig:1, which miniupnpc requires of an IGD,
and WANIPConnection:1), and answers its SOAP actions.
With --only-permanent, AddPortMapping with a nonzero lease fails with 725
OnlyPermanentLeasesSupported, as some routers do. Every action is printed on
stdout ("AddPortMapping lease=300 -> 725") for the test to check.
"""
import argparse
import http.server
import re
import socket
import socketserver
import struct
import sys
import threading

SVC = "urn:schemas-upnp-org:service:WANIPConnection:1"
DESC = """<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<device><deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>fake IGD</friendlyName><UDN>uuid:fake-igd-1</UDN>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType>
<UDN>uuid:fake-igd-2</UDN>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId>
<controlURL>/ctl/CmnIfCfg</controlURL><eventSubURL>/evt/CmnIfCfg</eventSubURL>
<SCPDURL>/WANCfg.xml</SCPDURL></service></serviceList>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType>
<UDN>uuid:fake-igd-3</UDN>
<serviceList><service><serviceType>%s</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL>
<SCPDURL>/WANIPCn.xml</SCPDURL></service></serviceList>
</device></deviceList></device></deviceList></device></root>
""" % SVC
ENV = ('<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/'
       'soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/'
       'encoding/"><s:Body>%s</s:Body></s:Envelope>')


def log(msg):
    print(msg, flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", 'text/xml; charset="utf-8"')
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/rootDesc.xml":
            self.reply(200, DESC)
        else:
            self.reply(404, "")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = body.decode(errors="replace")
        action = self.headers.get("SOAPAction", "").strip('"').split("#")[-1]
        args = dict(re.findall(r"<(New\w+)>([^<]*)</\1>", body))
        out = {}
        err = 0
        if action == "GetStatusInfo":
            out = {"NewConnectionStatus": "Connected",
                   "NewLastConnectionError": "ERROR_NONE", "NewUptime": "100"}
        elif action == "GetExternalIPAddress":
            out = {"NewExternalIPAddress": self.server.extip}
        elif action == "AddPortMapping":
            lease = args.get("NewLeaseDuration", "")
            if self.server.only_permanent and lease != "0":
                err = 725
            log("AddPortMapping port=%s client=%s lease=%s -> %d" % (
                args.get("NewExternalPort"), args.get("NewInternalClient"),
                lease, err))
        elif action == "DeletePortMapping":
            log("DeletePortMapping port=%s -> 0" % args.get("NewExternalPort"))
        else:
            err = 401
            log("%s -> 401" % action)
        if err:
            self.reply(500, ENV % (
                "<s:Fault><faultcode>s:Client</faultcode><faultstring>"
                "UPnPError</faultstring><detail><UPnPError xmlns=\"urn:"
                "schemas-upnp-org:control-1-0\"><errorCode>%d</errorCode>"
                "<errorDescription>error</errorDescription></UPnPError>"
                "</detail></s:Fault>" % err))
            return
        self.reply(200, ENV % ('<u:%sResponse xmlns:u="%s">%s</u:%sResponse>' % (
            action, SVC, "".join("<%s>%s</%s>" % (k, v, k)
                                 for k, v in out.items()), action)))


class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        # HTTPServer's own does a reverse DNS lookup of the address, which
        # stalls for seconds in a namespace without a resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def ssdp_socket(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 1900))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack(
        "4s4s", socket.inet_aton("239.255.255.250"), socket.inet_aton(addr)))
    return s


def ssdp(s, addr, port):
    while True:
        data, src = s.recvfrom(2048)
        m = re.search(rb"(?im)^ST:\s*(\S+)", data)
        if not data.startswith(b"M-SEARCH") or not m:
            continue
        st = m.group(1).decode()
        if st not in ("urn:schemas-upnp-org:device:InternetGatewayDevice:1",
                      "upnp:rootdevice", "ssdp:all"):
            continue
        s.sendto(("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: %s\r\n"
                  "USN: uuid:fake-igd-1::%s\r\nEXT:\r\nSERVER: fake/1.0 "
                  "UPnP/1.0 fake/1.0\r\nLOCATION: http://%s:%d/rootDesc.xml"
                  "\r\n\r\n" % (st, st, addr, port)).encode(), src)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("--port", type=int, default=5001)
    ap.add_argument("--extip", default="198.51.100.11")
    ap.add_argument("--only-permanent", action="store_true")
    a = ap.parse_args()
    srv = Server((a.addr, a.port), Handler)
    srv.only_permanent = a.only_permanent
    srv.extip = a.extip
    # Joined before "ready" so that the test's first search is heard.
    sock = ssdp_socket(a.addr)
    threading.Thread(target=ssdp, args=(sock, a.addr, a.port),
                     daemon=True).start()
    log("ready")
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
