import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import {
  ServerReflection,
  type ServerReflectionRequestSchema,
  type ServerReflectionResponse,
} from "../gen/grpc/reflection/v1/reflection_pb.ts";
import { ServerReflection as ServerReflectionV1Alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { storedBook } from "../testing/factories.ts";
import { bufCurl, startTestGrpcServer, type TestGrpcServer } from "../testing/grpc-server.ts";
import { SETUP_TIMEOUT_MS, TEARDOWN_TIMEOUT_MS } from "../testing/timeouts.ts";

let server: TestGrpcServer;

beforeAll(async () => {
  server = await startTestGrpcServer({
    books: {
      get: async (id) => storedBook(id),
    },
  });
}, SETUP_TIMEOUT_MS);
afterAll(() => server.close(1000), TEARDOWN_TIMEOUT_MS);

type Ask = MessageInitShape<typeof ServerReflectionRequestSchema>["messageRequest"];

const versions = [
  ["grpc.reflection.v1", ServerReflection],
  ["grpc.reflection.v1alpha", ServerReflectionV1Alpha],
] as const;

/** Sends the questions on one stream and collects the answers, in order. */
async function ask(service: (typeof versions)[number][1], ...questions: Ask[]) {
  // Both versions have the same messages: one client type serves both.
  const client = server.client(service as typeof ServerReflection);
  async function* requests() {
    for (const messageRequest of questions) yield { host: "localhost", messageRequest };
  }
  const answers: ServerReflectionResponse[] = [];
  for await (const answer of client.serverReflectionInfo(requests())) answers.push(answer);
  return answers;
}

function files(answer: ServerReflectionResponse | undefined): FileDescriptorProto[] {
  if (answer?.messageResponse.case !== "fileDescriptorResponse") {
    throw new Error(`not a file answer: ${JSON.stringify(answer?.messageResponse)}`);
  }
  return answer.messageResponse.value.fileDescriptorProto.map((bytes) =>
    fromBinary(FileDescriptorProtoSchema, bytes),
  );
}

describe.each(versions)("%s", (_, service) => {
  test("lists every service served, itself included", async () => {
    const [answer] = await ask(service, { case: "listServices", value: "*" });
    expect(answer?.validHost).toBe("localhost");
    expect(answer?.originalRequest?.messageRequest.case).toBe("listServices");
    expect(answer?.messageResponse.case).toBe("listServicesResponse");
    const names =
      answer?.messageResponse.case === "listServicesResponse"
        ? answer.messageResponse.value.service.map((s) => s.name)
        : [];
    expect(names).toEqual([
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
      "petbooks.v1.BookService",
    ]);
  });

  test("the file containing petbooks.v1.BookService comes with its dependencies", async () => {
    const [answer] = await ask(service, {
      case: "fileContainingSymbol",
      value: "petbooks.v1.BookService",
    });
    const [books, ...dependencies] = files(answer);
    expect(books?.name).toBe("petbooks/v1/books.proto");
    expect(books?.package).toBe("petbooks.v1");
    expect(books?.service[0]?.method.map((m) => m.name)).toEqual([
      "GetBook",
      "ListBooks",
      "WatchBooks",
    ]);
    expect(books?.dependency).toEqual(["google/protobuf/timestamp.proto"]);
    expect(dependencies.map((f) => f.name)).toEqual(["google/protobuf/timestamp.proto"]);
    expect(dependencies[0]?.messageType[0]?.name).toBe("Timestamp");
  });

  test.each([
    ["a method", "petbooks.v1.BookService.GetBook", "petbooks/v1/books.proto"],
    ["a message", "petbooks.v1.ListBooksResponse", "petbooks/v1/books.proto"],
    ["a field", "petbooks.v1.Book.published_on", "petbooks/v1/books.proto"],
    [
      "a nested enum",
      "grpc.health.v1.HealthCheckResponse.ServingStatus",
      "grpc/health/v1/health.proto",
    ],
    [
      "an enum value",
      "grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING",
      "grpc/health/v1/health.proto",
    ],
    ["a well-known type", "google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
  ])("finds the file declaring %s", async (_, symbol, file) => {
    const [answer] = await ask(service, { case: "fileContainingSymbol", value: symbol });
    expect(files(answer)[0]?.name).toBe(file);
  });

  test("answers several questions on one stream, in order, and says what it does not know", async () => {
    const answers = await ask(
      service,
      { case: "fileByFilename", value: "grpc/health/v1/health.proto" },
      { case: "fileContainingSymbol", value: "petbooks.v1.Nope" },
      { case: "fileByFilename", value: "nope.proto" },
      {
        case: "fileContainingExtension",
        value: { containingType: "petbooks.v1.Book", extensionNumber: 100 },
      },
      { case: "allExtensionNumbersOfType", value: "petbooks.v1.Book" },
      { case: "allExtensionNumbersOfType", value: "petbooks.v1.Nope" },
    );
    expect(answers).toHaveLength(6);
    expect(files(answers[0]).map((f) => f.name)).toEqual(["grpc/health/v1/health.proto"]);
    for (const i of [1, 2, 3, 5]) {
      const response = answers[i]?.messageResponse;
      expect(response?.case).toBe("errorResponse");
      expect(response?.case === "errorResponse" && response.value.errorCode).toBe(Code.NotFound);
    }
    expect(answers[4]?.messageResponse).toMatchObject({
      case: "allExtensionNumbersResponse",
      value: { baseTypeName: "petbooks.v1.Book", extensionNumber: [] },
    });
  });
});

describe("buf curl", () => {
  test.each(["grpc-v1", "grpc-v1alpha"])(
    "without .proto files, through %s reflection",
    async (protocol) => {
      const list = await bufCurl(server.url, ["--reflect-protocol", protocol, "--list-methods"]);
      expect(list.stdout).toContain("petbooks.v1.BookService/GetBook");
      expect(list.stdout).toContain("petbooks.v1.BookService/ListBooks");
      const id = "0199a7c6-0000-7000-8000-000000000000";
      // Reflection answers without a token; BookService wants one.
      const get = await bufCurl(
        `${server.url}/petbooks.v1.BookService/GetBook`,
        ["--reflect-protocol", protocol, "-d", JSON.stringify({ id })],
        { authorization: server.bearer.authorization },
      );
      expect(get.stderr).toBe("");
      expect(JSON.parse(get.stdout)).toEqual({
        id,
        title: "Dune",
        author: "Frank Herbert",
        publishedOn: "1965-08-01",
        createdAt: "2026-01-02T03:04:05Z",
        updatedAt: "2026-01-02T03:04:05Z",
      });
    },
  );

  test("with the .proto files", async () => {
    const get = await bufCurl(
      `${server.url}/petbooks.v1.BookService/GetBook`,
      ["-d", '{"id":"nope"}'],
      { schema: true, authorization: server.bearer.authorization },
    );
    expect(get.code).not.toBe(0);
    expect(JSON.parse(get.stderr)).toEqual({
      code: "invalid_argument",
      message: "id must be a UUID",
    });
  });
});
