/** Connect gRPC clients for the benches, carrying a bearer token when given. */
import type { DescService } from "@bufbuild/protobuf";
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

/** A client whose HTTP/2 session can be closed (otherwise it keeps the process alive). */
export function grpcClient<T extends DescService>(url: string, service: T, authorization?: string) {
  const sessionManager = new Http2SessionManager(url);
  const withToken: Interceptor = (next) => (req) => {
    if (authorization) req.header.set("authorization", authorization);
    return next(req);
  };
  const transport = createGrpcTransport({
    baseUrl: url,
    sessionManager,
    interceptors: [withToken],
  });
  const client: Client<T> = createClient(service, transport);
  return { client, close: () => sessionManager.abort() };
}
