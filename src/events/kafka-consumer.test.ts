import { describe, expect, test } from "bun:test";
import {
  KafkaJSConnectionError,
  KafkaJSDeleteGroupsError,
  KafkaJSError,
  KafkaJSNonRetriableError,
} from "kafkajs";
import { capturingLogger } from "../testing/logger.ts";
import { expectTwoRetries, recordingSleep } from "../testing/sleep.ts";
import { KafkaConsumerConnection, KafkaGroupDeletion } from "./kafka-consumer.ts";

/** A stand-in for a kafkajs consumer whose connects fail with `errors` in turn. */
function fakeConsumer(errors: Error[]) {
  const calls: string[] = [];
  const consumer = {
    async connect() {
      calls.push("connect");
      const error = errors.shift();
      if (error) throw error;
    },
    async subscribe(s: { topic: string; fromBeginning?: boolean }) {
      calls.push(`subscribe ${s.topic} ${s.fromBeginning}`);
    },
  };
  return { consumer, calls };
}

describe("KafkaConsumerConnection", () => {
  test("tries again while Kafka is out of reach, waiting longer each time", async () => {
    const refused = () => new KafkaJSConnectionError("Connection error: connect ECONNREFUSED");
    const { consumer, calls } = fakeConsumer([refused(), refused()]);
    const { logger, lines } = capturingLogger();
    const { sleep, delays } = recordingSleep();
    await new KafkaConsumerConnection(consumer, logger, sleep).connect("petbooks.books", true);
    expect(calls).toEqual(["connect", "connect", "connect", "subscribe petbooks.books true"]);
    expectTwoRetries({ delays, lines }, "connect the Kafka consumer", 500);
  });

  test("gives up after 5 attempts", async () => {
    const errors = Array.from(
      { length: 6 },
      () => new KafkaJSConnectionError("Connection timeout"),
    );
    const { consumer, calls } = fakeConsumer(errors);
    const { sleep } = recordingSleep();
    const connection = new KafkaConsumerConnection(consumer, capturingLogger().logger, sleep);
    await expect(connection.connect("t", false)).rejects.toThrow("Connection timeout");
    expect(calls).toEqual(Array(5).fill("connect"));
  });

  test("a refusal no retry fixes fails at once", async () => {
    const { consumer, calls } = fakeConsumer([
      new KafkaJSNonRetriableError("SASL PLAIN authentication failed"),
    ]);
    const { sleep, delays } = recordingSleep();
    const connection = new KafkaConsumerConnection(consumer, capturingLogger().logger, sleep);
    await expect(connection.connect("t", false)).rejects.toThrow("SASL");
    expect(calls).toEqual(["connect"]);
    expect(delays).toEqual([]);
  });
});

describe("KafkaGroupDeletion", () => {
  /** kafkajs's answer for one group that the broker refused to delete (admin/index.js). */
  const refusal = (errorCode: number, type: string) =>
    new KafkaJSDeleteGroupsError("Error in DeleteGroups", [
      { groupId: "feed", errorCode, error: new KafkaJSError(type) },
    ]);

  /** A stand-in for the kafkajs admin whose deletions fail with `errors` in turn. */
  function fakeAdmin(errors: Error[]) {
    const deleted: string[][] = [];
    const admin = {
      async deleteGroups(groupIds: string[]) {
        deleted.push(groupIds);
        const error = errors.shift();
        if (error) throw error;
        return groupIds.map((groupId) => ({ groupId, errorCode: 0 }));
      },
    };
    return { admin, deleted };
  }

  test("a group that still has members is tried again", async () => {
    const { admin, deleted } = fakeAdmin([refusal(68, "NON_EMPTY_GROUP")]);
    const { logger, lines } = capturingLogger();
    const { sleep, delays } = recordingSleep();
    await new KafkaGroupDeletion(admin, logger, sleep).delete("feed");
    expect(deleted).toEqual([["feed"], ["feed"]]);
    expect(delays).toHaveLength(1);
    expect(delays[0]).toBeWithin(200, 240.001);
    expect(lines).toEqual([
      expect.objectContaining({
        operation: "delete the WatchBooks feed's consumer group",
        attempt: 1,
        of: 3,
      }),
    ]);
  });

  test("a group that never formed is not tried again", async () => {
    const notFound = refusal(69, "GROUP_ID_NOT_FOUND");
    const { admin, deleted } = fakeAdmin([notFound]);
    const { sleep, delays } = recordingSleep();
    const deletion = new KafkaGroupDeletion(admin, capturingLogger().logger, sleep);
    expect(await deletion.delete("feed").catch((e: unknown) => e)).toBe(notFound);
    expect(deleted).toHaveLength(1);
    expect(delays).toEqual([]);
  });

  test("gives up after 3 attempts", async () => {
    const errors = Array.from({ length: 4 }, () => refusal(68, "NON_EMPTY_GROUP"));
    const { admin, deleted } = fakeAdmin(errors);
    const { sleep } = recordingSleep();
    const deletion = new KafkaGroupDeletion(admin, capturingLogger().logger, sleep);
    await expect(deletion.delete("feed")).rejects.toThrow("Error in DeleteGroups");
    expect(deleted).toHaveLength(3);
  });
});
