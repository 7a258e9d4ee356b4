import { describe, expect, test } from "bun:test";
import { loadConfig } from "../config.ts";
import { configProblems } from "../testing/config.ts";

const SECRET = "s3-secret-value-9f8e7d6c5b4a";
const base = {
  S3_BUCKET: "petbooks-photos",
  S3_ACCESS_KEY_ID: "AKIAEXAMPLE",
  S3_SECRET_ACCESS_KEY: SECRET,
};

describe("S3 configuration", () => {
  test("unset S3_BUCKET: photos stay local, whatever else is set", () => {
    expect(loadConfig({ S3_SECRET_ACCESS_KEY: "change-me-please" }).s3).toBeUndefined();
  });

  test("reads the variables Bun's S3 client reads", () => {
    const config = loadConfig({
      ...base,
      S3_ENDPOINT: "http://minio:9000/",
      S3_REGION: "eu-west-1",
      S3_SESSION_TOKEN: "token",
      S3_VIRTUAL_HOSTED_STYLE: "true",
    });
    expect(config.s3).toEqual({
      bucket: "petbooks-photos",
      endpoint: "http://minio:9000",
      region: "eu-west-1",
      accessKeyId: "AKIAEXAMPLE",
      secretAccessKey: SECRET,
      sessionToken: "token",
      virtualHostedStyle: true,
    });
  });

  test("falls back to AWS_* as Bun does; path style by default", () => {
    const config = loadConfig({
      S3_BUCKET: "photos",
      AWS_ACCESS_KEY_ID: "AKIAAWS",
      AWS_SECRET_ACCESS_KEY: SECRET,
      AWS_REGION: "us-west-2",
    });
    expect(config.s3).toMatchObject({
      accessKeyId: "AKIAAWS",
      secretAccessKey: SECRET,
      region: "us-west-2",
      endpoint: undefined,
      virtualHostedStyle: false,
    });
  });

  test("every problem is named in one message, and no secret is echoed", () => {
    const problems = configProblems({
      S3_BUCKET: "Not_A_Bucket",
      S3_ENDPOINT: "ftp://example.com",
      S3_VIRTUAL_HOSTED_STYLE: "maybe",
    });
    expect(problems).toEqual([
      'S3_BUCKET must be a bucket name: 3 to 63 of a-z 0-9 . - (got "Not_A_Bucket")',
      "S3_ENDPOINT must be an http:// or https:// URL",
      "S3_ACCESS_KEY_ID is required with S3_BUCKET (or AWS_ACCESS_KEY_ID)",
      "S3_SECRET_ACCESS_KEY is required with S3_BUCKET (or AWS_SECRET_ACCESS_KEY)",
      'S3_VIRTUAL_HOSTED_STYLE must be true or false (got "maybe")',
    ]);
    const placeholder = "change-me-to-a-random-secret-key";
    const refused = configProblems({ ...base, S3_SECRET_ACCESS_KEY: placeholder });
    expect(refused).toHaveLength(1);
    expect(refused[0]).toStartWith("S3_SECRET_ACCESS_KEY is still a placeholder");
    expect(refused.join(" ")).not.toContain(placeholder);
  });
});
