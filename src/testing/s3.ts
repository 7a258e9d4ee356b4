/**
 * An S3-compatible server on loopback for tests and benchmarks: s3rver (an npm devDependency, a
 * test double of S3 that stores objects in a folder), with one bucket made at start.
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import S3rver from "s3rver";
import type { S3StorageConfig } from "../storage/s3-photo-storage.ts";
import { makeTempDir } from "./temp.ts";

/** s3rver accepts exactly these credentials (and checks the signature made with them). */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;

export interface TestS3Server {
  endpoint: string;
  bucket: string;
  /** The storage config for this server's bucket. */
  config: S3StorageConfig;
  /** The S3_* variables that point a `serve` process at this bucket. */
  env: Record<string, string>;
  /** The folder s3rver keeps objects in (to look at what is stored, out of band). */
  directory: string;
  close(): Promise<void>;
}

/**
 * `virtualHosted`: the bucket is addressed by host name (`http://<bucket>:port`), as with
 * S3_VIRTUAL_HOSTED_STYLE=true; s3rver takes a non-IP host name as the bucket, so the bucket is
 * named like a host under `.localhost` (which resolves to loopback), e.g. `photos.localhost`.
 */
export async function startTestS3Server(
  bucket = "petbooks-photos",
  options: { virtualHosted?: boolean } = {},
): Promise<TestS3Server> {
  const directory = makeTempDir("petbooks-s3rver-");
  // Port 0: the system picks a free one, so parallel runs never collide.
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  readAfterWrite(server);
  const { port } = await server.run();
  const endpoint = options.virtualHosted ? `http://${bucket}:${port}` : `http://127.0.0.1:${port}`;
  const config: S3StorageConfig = {
    bucket,
    endpoint,
    region: "us-east-1",
    ...S3RVER_CREDENTIALS,
    sessionToken: undefined,
    virtualHostedStyle: options.virtualHosted ?? false,
  };
  return {
    endpoint,
    bucket,
    config,
    env: {
      S3_BUCKET: bucket,
      S3_ENDPOINT: endpoint,
      S3_REGION: "us-east-1",
      S3_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
      S3_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
      S3_VIRTUAL_HOSTED_STYLE: String(options.virtualHosted ?? false),
    },
    directory,
    close: () => server.close(),
  };
}

/**
 * S3 answers a PUT once the object is stored, so a read straight after finds it. s3rver answers
 * once the bytes are handed to a write stream that may not even have opened its file yet, and a
 * loaded test run then reads a missing or short object. This stores it the same way (same file,
 * same metadata) but answers after the file is written and closed.
 */
function readAfterWrite(server: S3rver): void {
  const store = server.store;
  store.putObject = async (object) => {
    const path = store.getResourcePath(object.bucket, object.key, "object");
    await mkdir(dirname(path), { recursive: true });
    const md5 = createHash("md5");
    let size = 0;
    const measure = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        md5.update(chunk);
        size += chunk.length;
        done(null, chunk);
      },
    });
    const content = Buffer.isBuffer(object.content)
      ? Readable.from([object.content])
      : object.content;
    await pipeline(content, measure, createWriteStream(path));
    const digest = md5.digest("hex");
    await store.putMetadata(object.bucket, object.key, object.metadata, digest);
    return { size, md5: digest };
  };
}
