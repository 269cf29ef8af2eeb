// Feeds the input as the body of `POST /queries` through `QueryAPI.parseQuery` (strict JSON values,
// unknown keys, id/text/gate rules, the merge onto the pipeline's gate) and renders the result as
// `GET /queries` does. The same bytes also go through the `Authorization` header check and the
// loopback-host test. Sources/Serve/QueryAPI.swift is compiled into this harness directly.
import Foundation
import Gate
import Pipeline

private let baseGates: [GateSpec] = [GateSpec.defaults, GateSpec(), GateSpec(method: "atp", tokens: 16)]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = Data(UnsafeBufferPointer(start: data, count: size))
    let base = baseGates[size % baseGates.count]
    do {
        let query = try QueryAPI.parseQuery(body, baseGate: base)
        precondition(QueryAPI.isValidID(query.id), "accepted an invalid id")
        _ = QueryAPI.json(query)
        _ = QueryAPI.listJSON([query, query])
    } catch { consume(error) }

    let header = String(decoding: body, as: UTF8.self)
    do { try ServeAuth.authorizeChange(token: "s3cret-token", authorization: header) } catch { consume(error) }
    _ = ServeAuth.isLoopback(header)
    do { try ServeAuth.checkStart(host: header, token: nil) } catch { consume(error) }
    return 0
}
