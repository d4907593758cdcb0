// niofloor — floor.c's client on SwiftNIO: what a check costs this machine when the client is an
// event loop and nothing else (one keep-alive loopback connection to tttsim, the loop's timer for
// the pace with ±3 % jitter, tttd's lookup request, the answer read to its Content-Length).
// Between floor.c and bench/detection/steady, it says how much of tttd's CPU per check the loop
// itself costs, and how much Swift's tasks add:
//
//   loop      the request written from a timer callback, the answer read in the channel handler
//   deferred  the same, the answer left in the socket until the next request's timer (autoRead off):
//             one wake a request instead of two
//   tasks     one task per check loop, on tttd's executor (jobs on the event loop), sleeping with
//             tttd's LoopSleep and awaiting the answer on a continuation, as tttd's workers do
//   dispatch  the same task on Swift's default executor (Dispatch's threads), for comparison
//
//   scripts/release-build --product niofloor
//   tttsim --listen 127.0.0.1:PORT --accounts 1000 &
//   .build/release/niofloor PORT RATE SECONDS ACCOUNTS MODE      e.g. 8080 16.67 60 1000 loop
#if canImport(Glibc)
import Glibc
#endif
import Foundation
import NIOCore
import NIOPosix
import TTTDomain
import TTTEventLoop

let arguments = CommandLine.arguments
guard arguments.count == 6, let port = Int(arguments[1]), let rate = Double(arguments[2]), let seconds = Double(arguments[3]),
      let accounts = Int(arguments[4]), ["loop", "deferred", "tasks", "dispatch"].contains(arguments[5]) else {
    print("usage: niofloor PORT RATE SECONDS ACCOUNTS loop|deferred|tasks|dispatch")
    exit(2)
}
let mode = arguments[5]
if mode == "tasks" { EventLoopExecutor.install() }

/// floor.c's request, byte for byte.
@Sendable func request(_ number: Int) -> ByteBuffer {
    ByteBuffer(string: "GET /api-live/user/room/?aid=1988&app_name=tiktok_web&device_platform=web_pc&channel=tiktok_web"
        + "&browser_language=fr-FR&browser_platform=Win32&browser_name=Mozilla&browser_version=5.0"
        + "&user_is_login=false&uniqueId=sim\(number % accounts)&sourceType=54 HTTP/1.1\r\n"
        + "Host: 127.0.0.1:\(port)\r\n"
        + "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n"
        + "Accept: application/json, text/plain, */*\r\nAccept-Language: fr-FR,fr;q=0.9,en;q=0.8\r\n"
        + "Accept-Encoding: gzip, deflate\r\nReferer: https://www.tiktok.com/\r\nOrigin: https://www.tiktok.com\r\n"
        + "Connection: keep-alive\r\nCookie: tt-target-idc=useast1a\r\n\r\n")
}

/// Collects an answer until its Content-Length, then calls `answered`. Loop-confined.
final class AnswerReader: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    private var pending = ByteBuffer()
    var answered: (() -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        pending.writeBuffer(&bytes)
        let whole = pending.withUnsafeReadableBytes { raw -> Bool in
            var length = -1
            var index = 0
            while index + 3 < raw.count {
                if raw[index] == 13, raw[index + 1] == 10, raw[index + 2] == 13, raw[index + 3] == 10 {
                    return length >= 0 && raw.count - (index + 4) >= length
                }
                // "\ncontent-length:" in any case
                if raw[index] == 10, index + 16 < raw.count, raw[index + 1] | 0x20 == UInt8(ascii: "c"),
                   raw[index + 9] | 0x20 == UInt8(ascii: "l"), raw[index + 15] == UInt8(ascii: ":") {
                    var digit = index + 16
                    while digit < raw.count, raw[digit] == 0x20 { digit += 1 }
                    length = 0
                    while digit < raw.count, raw[digit] >= 0x30, raw[digit] <= 0x39 {
                        length = length * 10 + Int(raw[digit] - 0x30)
                        digit += 1
                    }
                }
                index += 1
            }
            return false
        }
        if whole {
            pending.clear()
            answered?()
        }
    }
}

let loop = MultiThreadedEventLoopGroup.singleton.next()
let reader = AnswerReader()
let channel = try ClientBootstrap(group: loop).channelOption(.socketOption(.tcp_nodelay), value: 1)
    .channelOption(.autoRead, value: mode != "deferred")
    .channelInitializer { channel in channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(reader) } }
    .connect(host: "127.0.0.1", port: port).wait()
nonisolated(unsafe) var sent = 0
nonisolated(unsafe) var answers = 0
nonisolated(unsafe) var random = SeededRandom(seed: 1)
@Sendable func gap() -> TimeAmount { .nanoseconds(Int64(Double.random(in: 0.99..<1.05, using: &random) / rate * 1e9)) }
let end = NIODeadline.now() + .nanoseconds(Int64(seconds * 1e9))
let done = loop.makePromise(of: Void.self)

var before = rusage()
getrusage(RUSAGE_SELF.rawValue, &before)
switch mode {
case "loop", "deferred":
    reader.answered = { answers += 1 }
    @Sendable func fire(at deadline: NIODeadline) {
        guard deadline < end else { return done.succeed(()) }
        // The last answer is waiting in the socket by now: read it in this wake, before the next request.
        if mode == "deferred", sent > answers { channel.read() }
        channel.writeAndFlush(request(sent), promise: nil)
        sent += 1
        let next = deadline + gap()
        loop.scheduleTask(deadline: next) { fire(at: next) }
    }
    let first = NIODeadline.now() + .milliseconds(50)
    loop.scheduleTask(deadline: first) { fire(at: first) }
default:
    Task.detached {
        var next = ContinuousClock.now + .milliseconds(50)
        let stop = ContinuousClock.now + .seconds(seconds)
        while next < stop {
            if mode == "tasks" {
                try await LoopSleep.sleep(until: next)
            } else {
                try await Task.sleep(until: next)
            }
            await withUnsafeContinuation { (continuation: UnsafeContinuation<Void, Never>) in
                loop.execute {
                    reader.answered = {
                        answers += 1
                        continuation.resume()
                    }
                    channel.writeAndFlush(request(sent), promise: nil)
                    sent += 1
                }
            }
            next += .nanoseconds(gap().nanoseconds)
        }
        done.succeed(())
    }
}
try done.futureResult.wait()
var after = rusage()
getrusage(RUSAGE_SELF.rawValue, &after)

func cpuSeconds(_ usage: rusage) -> Double {
    Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
}
let count = Double(max(sent, 1))
print("| mode | rate | requests | answers | CPU per request | voluntary / involuntary switches per request |")
print("|---|---:|---:|---:|---:|---:|")
print("| \(mode) | \(String(format: "%.2f", rate)) req/s | \(sent) | \(answers) | \(String(format: "%.3f", 1000 * (cpuSeconds(after) - cpuSeconds(before)) / count)) ms | "
    + String(format: "%.2f / %.2f |", Double(after.ru_nvcsw - before.ru_nvcsw) / count, Double(after.ru_nivcsw - before.ru_nivcsw) / count))
