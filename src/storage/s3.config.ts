/**
 * S3_* configuration (photos in a bucket): the variables Bun's S3 client reads, with the same
 * AWS_* fallbacks, validated with the rest of the config. Error messages name variables, never
 * their values: two of them are credentials.
 */
import type { S3StorageConfig } from "./s3-photo-storage.ts";

const PLACEHOLDER = /change[-_ ]?me/i;
/** S3's bucket naming rules (MinIO and R2 follow them too). */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** The S3 settings, or undefined when S3_BUCKET is unset (photos then stay in DATA_DIR/photos). */
export function parseS3Config(
  value: (name: string) => string | undefined,
  problems: string[],
): S3StorageConfig | undefined {
  const either = (name: string) => value(`S3_${name}`) ?? value(`AWS_${name}`);
  const bucket = value("S3_BUCKET");
  if (bucket === undefined) return undefined;
  if (!BUCKET_NAME.test(bucket)) {
    problems.push(`S3_BUCKET must be a bucket name: 3 to 63 of a-z 0-9 . - (got "${bucket}")`);
  }
  const endpoint = either("ENDPOINT")?.replace(/\/+$/, "");
  if (
    endpoint !== undefined &&
    (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol))
  ) {
    problems.push("S3_ENDPOINT must be an http:// or https:// URL");
  }
  const accessKeyId = either("ACCESS_KEY_ID");
  const secretAccessKey = either("SECRET_ACCESS_KEY");
  if (accessKeyId === undefined) {
    problems.push("S3_ACCESS_KEY_ID is required with S3_BUCKET (or AWS_ACCESS_KEY_ID)");
  }
  if (secretAccessKey === undefined) {
    problems.push("S3_SECRET_ACCESS_KEY is required with S3_BUCKET (or AWS_SECRET_ACCESS_KEY)");
  } else if (PLACEHOLDER.test(secretAccessKey)) {
    problems.push(
      'S3_SECRET_ACCESS_KEY is still a placeholder (it contains "change-me"): set the real key',
    );
  }
  const style = (value("S3_VIRTUAL_HOSTED_STYLE") ?? "false").toLowerCase();
  if (!["true", "false", "1", "0"].includes(style)) {
    problems.push(`S3_VIRTUAL_HOSTED_STYLE must be true or false (got "${style}")`);
  }
  return {
    bucket,
    endpoint,
    region: either("REGION"),
    accessKeyId: accessKeyId ?? "",
    secretAccessKey: secretAccessKey ?? "",
    sessionToken: either("SESSION_TOKEN"),
    virtualHostedStyle: style === "true" || style === "1",
  };
}
