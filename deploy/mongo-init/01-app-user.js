// Runs once, on the first start of an empty data volume (the mongo image's init hook):
// the application's own user, readWrite on its database only (not root).
const password = process.env.MONGO_APP_PASSWORD;
if (!password) {
  throw new Error("MONGO_APP_PASSWORD is not set");
}
db.getSiblingDB("oms").createUser({
  user: "oms",
  pwd: password,
  roles: [{ role: "readWrite", db: "oms" }],
});
