/**
 * gRPC server reflection (grpc.reflection.v1 and its predecessor v1alpha), answered from the
 * descriptors buf generated into src/gen, so clients need no .proto files.
 */
import {
  create,
  createRegistry,
  type DescFile,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type Registry,
  toBinary,
} from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import {
  ServerReflection,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../gen/grpc/reflection/v1/reflection_pb.ts";
import {
  ServerReflection as ServerReflectionV1Alpha,
  ServerReflectionRequestSchema as V1AlphaRequestSchema,
  ServerReflectionResponseSchema as V1AlphaResponseSchema,
} from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";

/** What reflection knows: the services served and every file they need, dependencies included. */
export interface ReflectionIndex {
  services: string[];
  files: Map<string, DescFile>;
  registry: Registry;
}

export function reflectionIndex(services: DescService[]): ReflectionIndex {
  // Keyed by the .proto path (DescFile.name drops the ".proto").
  const files = new Map<string, DescFile>();
  const add = (file: DescFile) => {
    if (files.has(file.proto.name)) return;
    files.set(file.proto.name, file);
    for (const dependency of file.dependencies) add(dependency);
  };
  for (const service of services) add(service.file);
  return {
    services: [...new Set(services.map((s) => s.typeName))].sort(),
    files,
    registry: createRegistry(...files.values()),
  };
}

/** The file and, after it, everything it imports (transitively), each serialized once. */
function withDependencies(file: DescFile): Uint8Array[] {
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  const visit = (f: DescFile) => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    for (const dependency of f.dependencies) visit(dependency);
  };
  visit(file);
  return out;
}

/** The file declaring a symbol: a type or service, or a member of one (method, field, value). */
function fileContainingSymbol(registry: Registry, symbol: string): DescFile | undefined {
  const direct = registry.get(symbol);
  if (direct) return direct.file;
  const dot = symbol.lastIndexOf(".");
  const parent = dot > 0 ? registry.get(symbol.slice(0, dot)) : undefined;
  const member = symbol.slice(dot + 1);
  switch (parent?.kind) {
    case "service":
      return parent.methods.some((m) => m.name === member) ? parent.file : undefined;
    case "message":
      return parent.fields.some((f) => f.name === member) ||
        parent.oneofs.some((o) => o.name === member)
        ? parent.file
        : undefined;
    case "enum":
      return parent.values.some((v) => v.name === member) ? parent.file : undefined;
    default:
      return undefined;
  }
}

type Answer = MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"];

const failure = (code: Code, message: string): Answer => ({
  case: "errorResponse",
  value: { errorCode: code, errorMessage: message },
});

function answer(index: ReflectionIndex, ask: ServerReflectionRequest["messageRequest"]): Answer {
  const files = (file: DescFile | undefined, what: string): Answer =>
    file
      ? { case: "fileDescriptorResponse", value: { fileDescriptorProto: withDependencies(file) } }
      : failure(Code.NotFound, `${what} not found`);
  switch (ask.case) {
    case "listServices":
      return {
        case: "listServicesResponse",
        value: { service: index.services.map((name) => ({ name })) },
      };
    case "fileByFilename":
      return files(index.files.get(ask.value), `file "${ask.value}"`);
    case "fileContainingSymbol":
      return files(fileContainingSymbol(index.registry, ask.value), `symbol "${ask.value}"`);
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = ask.value;
      const extendee = index.registry.getMessage(containingType);
      const extension = extendee && index.registry.getExtensionFor(extendee, extensionNumber);
      return files(extension?.file, `extension ${extensionNumber} of "${containingType}"`);
    }
    case "allExtensionNumbersOfType": {
      if (!index.registry.getMessage(ask.value)) {
        return failure(Code.NotFound, `type "${ask.value}" not found`);
      }
      const numbers: number[] = [];
      for (const desc of index.registry) {
        if (desc.kind === "extension" && desc.extendee.typeName === ask.value) {
          numbers.push(desc.number);
        }
      }
      return {
        case: "allExtensionNumbersResponse",
        value: { baseTypeName: ask.value, extensionNumber: numbers },
      };
    }
    default:
      return failure(Code.InvalidArgument, "the request asks nothing");
  }
}

/** The answer to one request on the stream. */
export function answerReflection(
  index: ReflectionIndex,
  request: ServerReflectionRequest,
): ServerReflectionResponse {
  return create(ServerReflectionResponseSchema, {
    validHost: request.host,
    originalRequest: request,
    messageResponse: answer(index, request.messageRequest),
  });
}

/**
 * Serves reflection for every service the router has, itself included. Register it last: the
 * index is built on the first request, from the router's handlers.
 */
export function registerReflection(router: ConnectRouter): void {
  let index: ReflectionIndex | undefined;
  const indexNow = () => {
    index ??= reflectionIndex(router.handlers.map((h) => h.service));
    return index;
  };
  router.service(ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) yield answerReflection(indexNow(), request);
    },
  });
  // v1alpha has the same messages under another package: the bytes translate both ways.
  router.service(ServerReflectionV1Alpha, {
    async *serverReflectionInfo(requests) {
      for await (const request of requests) {
        const v1 = fromBinary(
          ServerReflectionRequestSchema,
          toBinary(V1AlphaRequestSchema, request),
        );
        const answer = answerReflection(indexNow(), v1);
        yield fromBinary(V1AlphaResponseSchema, toBinary(ServerReflectionResponseSchema, answer));
      }
    },
  });
}
