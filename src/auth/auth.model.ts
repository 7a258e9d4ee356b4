/** Users as the domain knows them, with no HTTP in them (the route schemas: auth.schemas.ts). */

/** 3 to 50 of `A-Z a-z 0-9 _ . -`; unique regardless of case. */
export const USERNAME_PATTERN = "^[A-Za-z0-9_.-]{3,50}$";

export interface Registration {
  username: string;
  /** See password-policy.ts. */
  password: string;
}

/** A user (never the password or its hash). */
export interface User {
  id: string;
  username: string;
  /** UTC, RFC 3339. */
  created_at: string;
}
