module github.com/secwire/secwire

go 1.26
