// Sources/Serve/QueryAPI.swift is compiled into the queries_json harness on its own, without the rest
// of the Serve module (which needs Hummingbird/NIO). This is the one type it uses from HTTPService.swift.
public struct ServeError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ d: String) { description = d }
}
