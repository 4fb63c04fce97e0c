"""The applicant feature schema and the vectorised encoder shared by export/ and service/."""
