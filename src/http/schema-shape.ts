/**
 * `true` when a route schema's static type and the domain type it stands for are the same type,
 * property for property (optional ones too), `false` otherwise:
 * `true satisfies SameShape<Static<typeof S>, T>` fails to compile on drift.
 */
export type SameShape<A, B> =
  (<T>() => T extends Flat<A> ? 1 : 2) extends <T>() => T extends Flat<B> ? 1 : 2 ? true : false;

/** Intersections and nested objects spelled out, so equal shapes compare equal. */
type Flat<T> = T extends (infer E)[]
  ? Flat<E>[]
  : T extends object
    ? { [K in keyof T]: Flat<T[K]> }
    : T;
